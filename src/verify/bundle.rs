//! Steps 1 and 2: limits and shape. The bundle's size and counts are
//! bounded, and its protobuf oneofs are checked before the typed parser
//! could resolve a doubly-set one silently.

use serde::Deserialize;
use serde::de::IgnoredAny;
use sigstore_types::Bundle;

use super::TimeKind;

use super::{Verifier, VerifyError, times};

impl Verifier {
    pub(super) fn check_size(&self, what: &'static str, size: usize) -> Result<(), VerifyError> {
        if size > self.limits.max_bundle_bytes {
            return Err(VerifyError::TooLarge {
                what,
                size,
                limit: self.limits.max_bundle_bytes,
            });
        }
        Ok(())
    }

    pub(super) fn check_count(
        &self,
        what: &'static str,
        count: usize,
        limit: usize,
    ) -> Result<(), VerifyError> {
        if count > limit {
            return Err(VerifyError::TooMany { what, count, limit });
        }
        Ok(())
    }

    /// (1) limits and (2) shape.
    pub(super) fn parse_bundle(&self, bytes: &[u8]) -> Result<Bundle, VerifyError> {
        self.check_size("bundle", bytes.len())?;
        let shape: BundleShape =
            serde_json::from_slice(bytes).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        self.check_shape(&shape)?;
        let text = std::str::from_utf8(bytes).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        // Report an unknown media type as such, not as a generic parse error.
        let media: serde_json::Value =
            serde_json::from_str(text).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        match media.get("mediaType").and_then(|m| m.as_str()) {
            Some(mt) if mt.parse::<sigstore_types::MediaType>().is_err() => {
                return Err(VerifyError::UnknownMediaType(
                    mt.chars().take(200).collect(),
                ));
            }
            None => return Err(VerifyError::Malformed("bundle has no mediaType".into())),
            Some(_) => {}
        }
        let bundle: Bundle = serde_json::from_value(drop_null_oneofs(media))
            .map_err(|e| VerifyError::Malformed(e.to_string()))?;
        self.check_bundle(&bundle)?;
        Ok(bundle)
    }

    pub(super) fn parse_bundle_value(
        &self,
        value: serde_json::Value,
    ) -> Result<Bundle, VerifyError> {
        let shape: BundleShape =
            BundleShape::deserialize(&value).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        self.check_shape(&shape)?;
        let bundle: Bundle = serde_json::from_value(drop_null_oneofs(value))
            .map_err(|e| VerifyError::Malformed(e.to_string()))?;
        self.check_bundle(&bundle)?;
        Ok(bundle)
    }

    fn check_shape(&self, shape: &BundleShape) -> Result<(), VerifyError> {
        // ProtoJSON: a oneof set twice is an error (JSON `null` means unset).
        let content: Vec<&'static str> = [
            ("messageSignature", shape.message_signature.is_some()),
            ("dsseEnvelope", shape.dsse_envelope.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        if content.len() > 1 {
            return Err(VerifyError::OneofConflict {
                oneof: "the bundle content",
                fields: content,
            });
        }
        if let Some(m) = &shape.verification_material {
            let material: Vec<&'static str> = [
                ("publicKey", m.public_key.is_some()),
                ("x509CertificateChain", m.x509_certificate_chain.is_some()),
                ("certificate", m.certificate.is_some()),
            ]
            .into_iter()
            .filter_map(|(name, set)| set.then_some(name))
            .collect();
            if material.len() > 1 {
                return Err(VerifyError::OneofConflict {
                    oneof: "verificationMaterial",
                    fields: material,
                });
            }
            let tlog = m.tlog_entries.as_ref().map_or(0, Vec::len);
            self.check_count(
                "transparency-log entries",
                tlog,
                self.limits.max_tlog_entries,
            )?;
            let ts = m
                .timestamp_verification_data
                .as_ref()
                .and_then(|t| t.rfc3161_timestamps.as_ref())
                .map_or(0, Vec::len);
            self.check_count("RFC 3161 timestamps", ts, self.limits.max_timestamps)?;
        }
        if let Some(env) = &shape.dsse_envelope {
            let n = env.signatures.as_ref().map_or(0, Vec::len);
            self.check_count("DSSE signatures", n, self.limits.max_signatures)?;
            // The bundle spec allows exactly one; checked here so that the
            // rule holds whatever the parser below does with a list.
            if n != 1 {
                return Err(VerifyError::DsseSignatureCount(n));
            }
        }
        Ok(())
    }

    /// Checks of the parsed bundle that need no key: no duplicate log
    /// entries, and no `integratedTime` in the future.
    fn check_bundle(&self, bundle: &Bundle) -> Result<(), VerifyError> {
        let entries = &bundle.verification_material.tlog_entries;
        for (i, e) in entries.iter().enumerate() {
            // sigstore-go's rule ("duplicate tlog entries found"): one log,
            // one index. A duplicate would count twice toward a threshold.
            if entries[..i].iter().any(|p| {
                p.log_id.key_id.as_bytes() == e.log_id.key_id.as_bytes()
                    && p.log_index.get() == e.log_index.get()
            }) {
                return Err(VerifyError::DuplicateTlogEntry {
                    log_id: hex::encode(e.log_id.key_id.as_bytes()),
                    log_index: e.log_index.get(),
                });
            }
        }
        let now = jiff::Timestamp::now();
        for t in entries.iter().filter_map(|e| e.integrated_time) {
            times::check_not_in_future(TimeKind::IntegratedTime, t, now)?;
        }
        Ok(())
    }
}

/// What is checked before the bundle is parsed for real: counts (limits),
/// and the oneofs, which the typed parser would resolve silently.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BundleShape {
    #[serde(default)]
    verification_material: Option<MaterialShape>,
    #[serde(default)]
    dsse_envelope: Option<EnvelopeShape>,
    #[serde(default)]
    message_signature: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MaterialShape {
    #[serde(default)]
    tlog_entries: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    timestamp_verification_data: Option<TimestampShape>,
    #[serde(default)]
    public_key: Option<IgnoredAny>,
    #[serde(default)]
    certificate: Option<IgnoredAny>,
    #[serde(default)]
    x509_certificate_chain: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimestampShape {
    #[serde(default)]
    rfc3161_timestamps: Option<Vec<IgnoredAny>>,
}

#[derive(Deserialize)]
pub(super) struct EnvelopeShape {
    #[serde(default)]
    pub(super) signatures: Option<Vec<IgnoredAny>>,
}

/// Removes oneof members whose value is JSON `null`: ProtoJSON reads null
/// as "not set", and the typed parser would otherwise take the null member
/// for the chosen one. [`Verifier::check_shape`] has already refused a
/// oneof with two non-null members.
fn drop_null_oneofs(mut value: serde_json::Value) -> serde_json::Value {
    let strip = |map: &mut serde_json::Map<String, serde_json::Value>, keys: &[&str]| {
        for k in keys {
            if map.get(*k).is_some_and(serde_json::Value::is_null) {
                map.remove(*k);
            }
        }
    };
    if let Some(top) = value.as_object_mut() {
        strip(top, &["messageSignature", "dsseEnvelope"]);
        if let Some(m) = top
            .get_mut("verificationMaterial")
            .and_then(serde_json::Value::as_object_mut)
        {
            strip(m, &["publicKey", "certificate", "x509CertificateChain"]);
        }
    }
    value
}
