//! Verified bytes held compactly while they are cached.
//!
//! The evidence cache keeps each statement (or signature payload) exactly
//! as it was verified, and parses it only when a contract is evaluated over
//! it, which the verdict cache makes rare. Held as is, the statements are
//! most of the cache's memory (a 3.5 KB SLSA provenance per digest: 35 MB
//! at 10,000 digests), so they are deflated: in-toto JSON is mostly field
//! names, URIs and hex digests, which deflate to well under half. Small
//! payloads, and any that deflate would not shrink by an eighth, are kept
//! as they are.

use std::borrow::Cow;

/// Below this many bytes deflating is not worth its header.
const MIN_DEFLATE: usize = 256;
/// Above this many bytes the fastest level is used: an SBOM of hundreds of
/// kilobytes is deflated once, on the cold path, within the admission
/// deadline (SBOMs are repetitive enough that level 1 still shrinks them
/// several times).
const FAST_ABOVE: usize = 64 * 1024;

/// Bytes as verified, possibly deflated. Reading them back gives exactly
/// the verified bytes, or an error: never other bytes.
#[derive(Clone)]
pub struct Packed {
    stored: Box<[u8]>,
    /// The length of the verified bytes; `stored` is deflated when it
    /// differs from `stored.len()`.
    len: u32,
    deflated: bool,
}

/// The stored bytes could not be inflated (memory corruption or a bug, as
/// they were deflated here): the evidence is unusable, and the contract
/// that needs it errs (fail closed).
#[derive(Debug, Clone, thiserror::Error)]
#[error("cached evidence of {len} bytes could not be inflated: {reason}")]
pub struct PackedError {
    len: u32,
    reason: String,
}

impl Packed {
    /// Packs `raw`, deflating it when that saves at least an eighth.
    /// Evidence larger than 4 GiB never reaches here (the registry limits
    /// are far below), but it would be kept as is rather than truncated.
    pub fn new(raw: &[u8]) -> Self {
        let plain = || Packed {
            stored: raw.into(),
            len: u32::try_from(raw.len()).unwrap_or(u32::MAX),
            deflated: false,
        };
        let Ok(len) = u32::try_from(raw.len()) else {
            return plain();
        };
        if raw.len() < MIN_DEFLATE {
            return plain();
        }
        let level = if raw.len() > FAST_ABOVE { 1 } else { 6 };
        let deflated = miniz_oxide::deflate::compress_to_vec(raw, level);
        if deflated.len() > raw.len() - raw.len() / 8 {
            return plain();
        }
        Packed {
            stored: deflated.into_boxed_slice(),
            len,
            deflated: true,
        }
    }

    /// The verified bytes.
    pub fn bytes(&self) -> Result<Cow<'_, [u8]>, PackedError> {
        if !self.deflated {
            return Ok(Cow::Borrowed(&self.stored));
        }
        let err = |reason: String| PackedError {
            len: self.len,
            reason,
        };
        let out = miniz_oxide::inflate::decompress_to_vec_with_limit(&self.stored, self.len())
            .map_err(|e| err(format!("{e:?}")))?;
        if out.len() != self.len() {
            return Err(err(format!("inflated to {} bytes", out.len())));
        }
        Ok(Cow::Owned(out))
    }

    /// The length of the verified bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes held in memory (what the cache weighs).
    pub fn stored_len(&self) -> usize {
        self.stored.len()
    }
}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packed")
            .field("len", &self.len)
            .field("stored", &self.stored.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(deps: usize) -> Vec<u8> {
        let deps: Vec<serde_json::Value> = (0..deps)
            .map(|i| {
                let d = crate::digest::Digest::compute(
                    crate::digest::Algorithm::Sha256,
                    format!("dep {i}").as_bytes(),
                );
                serde_json::json!({"uri": format!("pkg:docker/acme/base-{i}@{d}"), "digest": {"sha256": d.hex()}})
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {"buildDefinition": {"resolvedDependencies": deps}},
        }))
        .unwrap()
    }

    #[test]
    fn a_statement_round_trips_and_is_held_smaller() {
        let raw = statement(16);
        let p = Packed::new(&raw);
        assert!(p.deflated);
        assert!(
            p.stored_len() < raw.len() * 3 / 4,
            "{} of {}",
            p.stored_len(),
            raw.len()
        );
        assert_eq!(p.len(), raw.len());
        assert_eq!(&*p.bytes().unwrap(), &raw[..]);
    }

    #[test]
    fn small_or_incompressible_bytes_are_kept_as_they_are() {
        let small = br#"{"critical":{}}"#;
        let p = Packed::new(small);
        assert!(!p.deflated);
        assert_eq!(&*p.bytes().unwrap(), small);
        // SHA-256 output chained: no redundancy for deflate to find.
        let mut noise = Vec::new();
        let mut d = crate::digest::Digest::compute(crate::digest::Algorithm::Sha256, b"x");
        while noise.len() < 4096 {
            noise.extend(d.bytes());
            d = crate::digest::Digest::compute(crate::digest::Algorithm::Sha256, &noise);
        }
        let p = Packed::new(&noise);
        assert!(!p.deflated);
        assert_eq!(&*p.bytes().unwrap(), &noise[..]);
        assert!(Packed::new(b"").is_empty());
    }

    #[test]
    fn corrupted_storage_is_an_error_not_other_bytes() {
        let raw = statement(16);
        let mut p = Packed::new(&raw);
        assert!(p.deflated);
        let mut stored = p.stored.to_vec();
        stored.truncate(stored.len() / 2);
        p.stored = stored.into_boxed_slice();
        assert!(p.bytes().is_err());
        // A stream that inflates to more than the recorded length.
        let mut q = Packed::new(&raw);
        q.len -= 1;
        assert!(q.bytes().is_err());
    }
}
