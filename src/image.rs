//! Images as provgate names them: references, normalised once, and the
//! platforms of an index ([`PlatformManifest`]).
//!
//! Parsing follows Docker's rules (via `oci-client`'s `Reference`, a port of
//! distribution's reference grammar): `nginx` is
//! `docker.io/library/nginx:latest`, `ghcr.io/acme/app@sha256:…` keeps its
//! digest, a registry may carry a port. The digest, when present, is then
//! validated into a [`Digest`]. After that, [`ImageRef`] is the only form an
//! image name takes in provgate.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::digest::Digest;

/// Docker Hub's canonical registry name.
pub const DOCKER_HUB: &str = "docker.io";

/// Docker Hub's legacy name, normalised to [`DOCKER_HUB`] (as distribution's
/// `splitDockerDomain` does; it is the only alias).
const LEGACY_DOCKER_HUB: &str = "index.docker.io";

/// The host Docker Hub's registry API is served from (what Docker and
/// containerd contact for `docker.io` names).
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A normalised image reference.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct ReferenceError {
    input: String,
    reason: String,
}

/// References longer than this are rejected before parsing.
const MAX_REFERENCE_LEN: usize = 1024;

impl ImageRef {
    /// Parses and normalises a reference.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        let err = |reason: String| ReferenceError {
            input: s.chars().take(200).collect(),
            reason,
        };
        if s.len() > MAX_REFERENCE_LEN {
            return Err(err(format!("longer than {MAX_REFERENCE_LEN} bytes")));
        }
        if s.trim() != s || s.is_empty() {
            return Err(err("empty or surrounded by whitespace".into()));
        }
        let parsed: oci_client::Reference = s.parse().map_err(|e| err(format!("{e}")))?;
        // Docker and containerd read an upper-case first path component as
        // a registry host (`Library/app` is host `Library`), while
        // oci-client's parser files it under Docker Hub: judging one image
        // while the node pulls another. Repository names are lower case, so
        // such a reference is refused rather than guessed at.
        if parsed.repository().bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(err(
                "repository names must be lower case (an upper-case first component would name a registry host)".into(),
            ));
        }
        let digest = parsed
            .digest()
            .map(|d| d.parse::<Digest>().map_err(|e| err(e.to_string())))
            .transpose()?;
        // `nginx@sha256:…` has no tag; oci-client only defaults to `latest`
        // when neither is present, which is what we want.
        let tag = parsed.tag().map(str::to_owned);
        // Only `index.docker.io` is Docker Hub's legacy alias (distribution's
        // `splitDockerDomain`, which oci-spec's parser follows and has already
        // applied, together with the `library/` prefix for one-component
        // Docker Hub names). Every other host is kept as written, including
        // `registry-1.docker.io`: Docker and containerd pull
        // `registry-1.docker.io/b` as repository `b` on that host, never as
        // `library/b`, and filing it under `docker.io` would print a name
        // (`docker.io/b`) that parses back as `docker.io/library/b`.
        let registry = match parsed.registry() {
            LEGACY_DOCKER_HUB => DOCKER_HUB.to_owned(),
            r => r.to_owned(),
        };
        Ok(ImageRef {
            registry,
            repository: parsed.repository().to_owned(),
            tag,
            digest,
        })
    }

    /// Builds a reference from parts already validated elsewhere.
    pub fn from_parts(
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<Digest>,
    ) -> Result<Self, ReferenceError> {
        let mut s = format!("{registry}/{repository}");
        if let Some(t) = tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        ImageRef::parse(&s)
    }

    /// The registry as written (normalised: `docker.io` for Docker Hub),
    /// possibly with a port.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host to contact: Docker Hub's API lives at `registry-1.docker.io`.
    ///
    /// A name written with that host (`registry-1.docker.io/b`) keeps it as
    /// its registry, so it goes to the same host; its repository is used as
    /// written (`b`, not `library/b`), as Docker and containerd do.
    pub fn registry_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The repository path, e.g. `library/nginx`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The pinned digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, without tag or digest (what image globs match).
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository pinned to `digest` (tag kept for display).
    pub fn with_digest(&self, digest: Digest) -> Self {
        ImageRef {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same repository at `digest`, without a tag.
    pub fn at_digest(&self, digest: Digest) -> Self {
        ImageRef {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }
}

impl FromStr for ImageRef {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageRef({self})")
    }
}

impl Serialize for ImageRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A platform manifest of an index.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformManifest {
    /// Its digest.
    pub digest: Digest,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// Whether evidence attached to it was searched (only the first
    /// `registries.limits.maxPlatforms` are); an unsearched platform is
    /// still judged, on the index's evidence alone.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unsearched: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upper_case_first_component_is_refused_not_filed_under_docker_hub() {
        let e = ImageRef::parse("Library/ngin").unwrap_err();
        assert!(e.to_string().contains("lower case"), "{e}");
        assert!(ImageRef::parse("ghcr.io/Acme/app:1").is_err());
        assert!(ImageRef::parse("REGISTRY.example.com/acme/app:1").is_ok());
    }

    const HEX: &str = "00c669552a5008487c579f75e6f965234e458745857b9de2dfa62bbdb3e61f0a";

    #[test]
    fn normalises_docker_hub_short_names() {
        let r = ImageRef::parse("nginx").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
        assert_eq!(r.registry_host(), "registry-1.docker.io");
        assert_eq!(
            ImageRef::parse("acme/app:1").unwrap().to_string(),
            "docker.io/acme/app:1"
        );
        assert_eq!(
            ImageRef::parse("index.docker.io/library/nginx:1")
                .unwrap()
                .to_string(),
            "docker.io/library/nginx:1"
        );
    }

    /// Issue 11: `registry-1.docker.io/b` was filed as `docker.io/b`, which
    /// prints and parses back as `docker.io/library/b`.
    #[test]
    fn registry_1_docker_io_is_its_own_name_and_round_trips() {
        let r = ImageRef::parse("registry-1.docker.io/b").unwrap();
        assert_eq!(r.registry(), "registry-1.docker.io");
        assert_eq!(r.repository(), "b");
        assert_eq!(r.registry_host(), "registry-1.docker.io");
        assert_eq!(r.to_string(), "registry-1.docker.io/b:latest");
        let again = ImageRef::parse(&r.to_string()).unwrap();
        assert_eq!(again, r);
        assert_eq!(again.registry_host(), r.registry_host());
        // Docker Hub names proper: `library/` only for one component on
        // docker.io, and `index.docker.io` is the one alias.
        for (input, printed) in [
            ("b", "docker.io/library/b:latest"),
            ("docker.io/b", "docker.io/library/b:latest"),
            ("index.docker.io/b", "docker.io/library/b:latest"),
            ("index.docker.io/acme/b", "docker.io/acme/b:latest"),
            (
                "registry-1.docker.io/library/b",
                "registry-1.docker.io/library/b:latest",
            ),
        ] {
            let r = ImageRef::parse(input).unwrap();
            assert_eq!(r.to_string(), printed, "{input}");
            assert_eq!(r.registry_host(), "registry-1.docker.io", "{input}");
            let again = ImageRef::parse(printed).unwrap();
            assert_eq!(again, r, "{input}");
        }
    }

    #[test]
    fn keeps_ports_tags_and_digests() {
        let r = ImageRef::parse(&format!("127.0.0.1:5000/demo/app:v1@sha256:{HEX}")).unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "demo/app");
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.digest().unwrap().hex(), HEX);
        let pinned = ImageRef::parse(&format!("ghcr.io/acme/app@sha256:{HEX}")).unwrap();
        assert_eq!(pinned.tag(), None);
        assert_eq!(pinned.to_string(), format!("ghcr.io/acme/app@sha256:{HEX}"));
        assert_eq!(
            ImageRef::parse("localhost:5000/x").unwrap().registry(),
            "localhost:5000"
        );
    }

    #[test]
    fn rejects_malformed_references() {
        for bad in [
            "",
            " nginx",
            "Nginx",
            "ghcr.io/acme/app@evil.io/x",
            "ghcr.io/acme/app@sha256:abc",
            &format!("ghcr.io/acme/app@sha256:{}", HEX.to_uppercase()),
            "ghcr.io/acme/app:",
            "ghcr.io//app",
            &"a".repeat(2000),
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }
}
