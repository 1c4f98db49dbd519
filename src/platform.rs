//! Which platforms of an image index are judged.
//!
//! A multi-platform image is judged per platform unless evidence bound to
//! the index covers it (see `crate::engine`). The operator may list the
//! platforms the cluster runs (`platforms: [linux/amd64, linux/arm64]`), so
//! that an index's `windows/amd64` entry without evidence does not deny an
//! image no node will ever pull for Windows.

use std::fmt;

/// One configured platform: `os/arch` or `os/arch/variant`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlatformSpec {
    os: String,
    arch: String,
    variant: Option<String>,
}

impl PlatformSpec {
    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        };
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(PlatformSpec {
                os: (*os).into(),
                arch: (*arch).into(),
                variant: None,
            }),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(PlatformSpec {
                os: (*os).into(),
                arch: (*arch).into(),
                variant: Some((*variant).into()),
            }),
            _ => Err(format!(
                "platforms: {s:?} is not os/arch or os/arch/variant (e.g. linux/amd64, linux/arm64/v8)"
            )),
        }
    }

    /// Whether an index entry's platform (`os/arch[/variant]`, as
    /// discovery writes it) is this one. Without a variant, every variant
    /// of the architecture matches.
    pub fn matches(&self, platform: &str) -> bool {
        let mut parts = platform.split('/');
        let (Some(os), Some(arch)) = (parts.next(), parts.next()) else {
            return false;
        };
        let variant = parts.next();
        os == self.os
            && arch == self.arch
            && match &self.variant {
                None => true,
                Some(v) => variant == Some(v.as_str()),
            }
    }
}

impl fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The platforms the cluster runs; empty means every platform.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PlatformFilter(Vec<PlatformSpec>);

impl PlatformFilter {
    /// Compiles the configured list.
    pub fn new(specs: &[String]) -> Result<Self, String> {
        specs
            .iter()
            .map(|s| PlatformSpec::parse(s))
            .collect::<Result<Vec<_>, _>>()
            .map(PlatformFilter)
    }

    /// Whether `platform` is judged.
    pub fn includes(&self, platform: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|p| p.matches(platform))
    }

    /// Whether the filter lists nothing (every platform is judged).
    pub fn is_all(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for PlatformFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("every platform");
        }
        let names: Vec<String> = self.0.iter().map(|p| p.to_string()).collect();
        f.write_str(&names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_without_variant_matches_every_variant() {
        let f = PlatformFilter::new(&["linux/amd64".into(), "linux/arm64".into()]).unwrap();
        assert!(f.includes("linux/amd64"));
        assert!(f.includes("linux/arm64/v8"));
        assert!(!f.includes("windows/amd64"));
        assert!(!f.includes("linux/arm/v7"));
        let f = PlatformFilter::new(&["linux/arm/v7".into()]).unwrap();
        assert!(f.includes("linux/arm/v7"));
        assert!(!f.includes("linux/arm/v6"));
        assert!(PlatformFilter::default().includes("plan9/386"));
    }

    #[test]
    fn malformed_platforms_are_errors() {
        for bad in ["linux", "linux/", "/amd64", "Linux/amd64", "a/b/c/d", ""] {
            assert!(PlatformFilter::new(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
