//! Resolution: a tag to the digest of the manifest it names, and the
//! platforms an image index lists.

use super::error::{RegistryError, RegistryErrorKind};
use super::evidence::Resolved;
use super::manifest::{self, ImageIndex, MANIFEST_ACCEPT};
use super::record::RequestKind;
use super::session::{Session, content_type};
use crate::digest::Digest;
use crate::image::ImageRef;
use crate::image::PlatformManifest;

impl Session<'_> {
    /// Tag → digest: HEAD (`Docker-Content-Digest`), falling back to GET.
    pub async fn resolve(&self, image: &ImageRef) -> Result<Resolved, RegistryError> {
        if let Some(d) = image.digest() {
            return Ok(Resolved {
                digest: d.clone(),
                media_type: None,
                pinned: true,
            });
        }
        let tag = image.tag().unwrap_or("latest");
        let path = format!("{}/manifests/{tag}", self.repo);
        let context = format!("resolve {}:{tag}", self.repo);
        let max = self.transport.limits().max_manifest_bytes;
        let head = self
            .request(RequestKind::Resolve, true, &path, Some(MANIFEST_ACCEPT), 0)
            .await?;
        if head.status == 200 {
            if let Some(d) = head
                .header("docker-content-digest")
                .and_then(|d| d.trim().parse::<Digest>().ok())
            {
                return Ok(Resolved {
                    digest: d,
                    media_type: content_type(&head),
                    pinned: false,
                });
            }
        } else if head.status == 404 {
            return Err(self.err(context, RegistryErrorKind::NotFound));
        } else if !matches!(head.status, 400 | 405 | 501) {
            return Err(self.transport.status_error(&context, &head));
        }
        // No usable HEAD: GET and hash the bytes ourselves.
        let got = self
            .get(RequestKind::Resolve, &path, Some(MANIFEST_ACCEPT), max)
            .await?;
        if got.status != 200 {
            return Err(self.transport.status_error(&context, &got));
        }
        let digest = Digest::sha256_of(&got.body);
        if let Some(claimed) = got
            .header("docker-content-digest")
            .and_then(|d| d.trim().parse::<Digest>().ok())
            && claimed.algorithm() == digest.algorithm()
            && claimed != digest
        {
            return Err(self.err(
                context,
                RegistryErrorKind::DigestMismatch {
                    expected: claimed.to_string(),
                    actual: digest.to_string(),
                },
            ));
        }
        Ok(Resolved {
            digest,
            media_type: content_type(&got),
            pinned: false,
        })
    }
}

/// The platform manifests of an index to search for evidence (none for an
/// image manifest): at most `max_platforms`, BuildKit's attestation
/// manifests (`unknown/unknown`) left out. `media_type` is the registry's
/// Content-Type, else the body's own `mediaType`. Used on discovery and on
/// every read of the shared tier, which derives the list from the manifest
/// bytes instead of trusting a stored one.
pub(crate) fn index_platforms(
    body: &[u8],
    media_type: Option<&str>,
    max_platforms: usize,
    notes: &mut Vec<String>,
) -> Result<Vec<PlatformManifest>, String> {
    let media = media_type.map(str::to_owned).or_else(|| {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v.get("mediaType")
                    .and_then(|m| m.as_str())
                    .map(str::to_owned)
            })
    });
    let mut platforms = Vec::new();
    if !media.as_deref().is_some_and(manifest::is_index) {
        return Ok(platforms);
    }
    let index: ImageIndex = manifest::parse(body)?;
    for entry in index.manifests {
        let Some(p) = &entry.platform else { continue };
        // BuildKit's attestation manifests are unsigned in-toto
        // documents, not Sigstore evidence.
        if p.os == "unknown" {
            continue;
        }
        // Every platform is listed (and judged), however many there are
        // within the manifest's byte limit, and only the first ones are
        // searched for their own evidence; the number judged is bounded too.
        let judged_limit = max_platforms.saturating_mul(4);
        if platforms.len() >= judged_limit {
            return Err(format!(
                "the index lists more than {judged_limit} platform manifests (4 x registries.limits.maxPlatforms)"
            ));
        }
        let unsearched = platforms.len() >= max_platforms;
        if unsearched && platforms.len() == max_platforms {
            notes.push(format!(
                "only the first {max_platforms} platform manifests were searched for evidence (registries.limits.maxPlatforms); the others are judged on the index's evidence alone"
            ));
        }
        platforms.push(PlatformManifest {
            digest: entry.digest.clone(),
            platform: p.to_string(),
            unsearched,
        });
    }
    Ok(platforms)
}
