//! The OCI manifest and index shapes provgate reads.
//!
//! Our own serde types rather than `oci-client`'s: every digest is validated
//! into a [`Digest`] while parsing (a malformed digest makes the whole
//! manifest invalid), sizes are unsigned, and `artifactType` is read on
//! manifests as well as on index entries.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::digest::Digest;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The `Accept` header for manifest requests.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Sigstore bundle media types, used as referrer `artifactType` and as the
/// bundle layer's media type.
pub const SIGSTORE_BUNDLE_TYPES: &[&str] = &[
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
];

/// Whether a media type names a Sigstore bundle.
pub fn is_sigstore_bundle(media_type: &str) -> bool {
    SIGSTORE_BUNDLE_TYPES.contains(&media_type)
}

/// A content descriptor.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the referenced content.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// The artifact type (referrers).
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// Annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The platform (index entries).
    #[serde(default)]
    pub platform: Option<Platform>,
}

/// An index entry's platform.
#[derive(Debug, Clone, Deserialize)]
pub struct Platform {
    /// e.g. `amd64`.
    pub architecture: String,
    /// e.g. `linux`.
    pub os: String,
    /// e.g. `v8`.
    #[serde(default)]
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An image (or artifact) manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest media type, when stated.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The artifact type (OCI 1.1 artifacts).
    #[serde(default)]
    pub artifact_type: Option<String>,
    /// The config descriptor.
    pub config: Descriptor,
    /// The layers.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1 referrers).
    #[serde(default)]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// An image index (also the referrers API response).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// The index media type, when stated.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The entries.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

impl ImageManifest {
    /// The artifact type: `artifactType`, else the config media type (as the
    /// referrers API defines it).
    pub fn effective_artifact_type(&self) -> &str {
        self.artifact_type
            .as_deref()
            .unwrap_or(&self.config.media_type)
    }
}

/// Whether a media type is an index.
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// Parses JSON bytes into `T`, with the parse error as text.
pub fn parse<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_with_a_bad_digest_is_invalid() {
        let m = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:abc","size":1},"layers":[]}"#;
        assert!(parse::<ImageManifest>(m).is_err());
        let m = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824","size":-1},"layers":[]}"#;
        assert!(parse::<ImageManifest>(m).is_err());
    }

    #[test]
    fn artifact_type_falls_back_to_config_media_type() {
        let m = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","digest":"sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824","size":2},"layers":[]}"#;
        let m: ImageManifest = parse(m).unwrap();
        assert!(is_sigstore_bundle(m.effective_artifact_type()));
    }
}
