//! Verification of one token against one timestamp authority.

use cms::signed_data::{SignerIdentifier, SignerInfo};
use const_oid::ObjectIdentifier;
use der::asn1::OctetStringRef;
use der::{Decode, Encode};
use jiff::Timestamp;
use rustls_pki_types::{CertificateDer, UnixTime};
use sigstore_crypto::{KeyAlgorithm, WEBPKI_VERIFICATION_ALGS};
use sigstore_types::{DerPublicKey, HashAlgorithm, SignatureBytes, TimestampToken, TsaAuthority};
use x509_cert::Certificate;

use crate::error::{Error, Result};
use crate::tstinfo::{parse_token, ID_CT_TST_INFO};

const ID_SHA256: ObjectIdentifier = const_oid::db::rfc5912::ID_SHA_256;
const ID_SHA384: ObjectIdentifier = const_oid::db::rfc5912::ID_SHA_384;
const ID_SHA512: ObjectIdentifier = const_oid::db::rfc5912::ID_SHA_512;
const ID_CONTENT_TYPE: ObjectIdentifier = const_oid::db::rfc5911::ID_CONTENT_TYPE;
const ID_MESSAGE_DIGEST: ObjectIdentifier = const_oid::db::rfc5911::ID_MESSAGE_DIGEST;
const ID_SUBJECT_KEY_IDENTIFIER: ObjectIdentifier = const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER;
const ID_KP_TIME_STAMPING: ObjectIdentifier = const_oid::db::rfc5280::ID_KP_TIME_STAMPING;

/// Verifies an RFC 3161 timestamp token against a single timestamp authority
/// and returns the authenticated signed time.
///
/// `signature` is the bundle signature the token must timestamp. The checks
/// are listed in the crate documentation. A token that is authentic but whose
/// time lies outside the authority's window fails with
/// [`Error::TimestampOutsideValidity`], so that a caller trying several
/// authorities can tell "wrong authority" from "right authority, wrong time".
pub fn verify_timestamp_for_authority(
    timestamp_token: &TimestampToken,
    signature: &SignatureBytes,
    authority: &TsaAuthority,
) -> Result<Timestamp> {
    let token = parse_token(timestamp_token.as_bytes())?;
    let tst = &token.tst_info;

    // The token must timestamp this signature.
    let imprint = digest(&tst.hash_algorithm, signature.as_bytes())?;
    if imprint != tst.hashed_message {
        return Err(Error::HashMismatch {
            expected: hex::encode(&tst.hashed_message),
            actual: hex::encode(imprint),
        });
    }

    // Exactly one signer, and it must be the authority's own leaf.
    let signer_infos = &token.signed_data.signer_infos.0;
    if signer_infos.len() != 1 {
        return Err(Error::SignatureVerificationError(format!(
            "expected exactly one SignerInfo, found {}",
            signer_infos.len()
        )));
    }
    let Some(signer_info) = signer_infos.get(0) else {
        return Err(Error::SignatureVerificationError("no SignerInfo".into()));
    };
    let leaf = Certificate::from_der(authority.leaf.as_bytes())
        .map_err(|e| Error::parse("trusted TSA leaf certificate", e))?;
    if !signer_matches(&signer_info.sid, &leaf) {
        return Err(Error::SignatureVerificationError(
            "the token's signer is not this authority's TSA certificate".into(),
        ));
    }

    verify_signed_attributes(signer_info, &token.tst_info_der, &leaf)?;
    verify_chain(authority, tst.gen_time)?;

    let authorized = authority
        .valid_for
        .as_ref()
        .is_none_or(|window| window.contains(tst.gen_time));
    if !authorized {
        return Err(Error::TimestampOutsideValidity { time: tst.gen_time });
    }
    Ok(tst.gen_time)
}

fn digest(algorithm: &ObjectIdentifier, data: &[u8]) -> Result<Vec<u8>> {
    Ok(match *algorithm {
        ID_SHA256 => sigstore_crypto::sha256(data).as_bytes().to_vec(),
        ID_SHA384 => sigstore_crypto::sha384(data).as_bytes().to_vec(),
        ID_SHA512 => sigstore_crypto::sha512(data).as_bytes().to_vec(),
        other => return Err(Error::Parse(format!("unsupported hash algorithm {other}"))),
    })
}

fn hash_algorithm(oid: &ObjectIdentifier) -> Result<HashAlgorithm> {
    Ok(match *oid {
        ID_SHA256 => HashAlgorithm::Sha2256,
        ID_SHA384 => HashAlgorithm::Sha2384,
        ID_SHA512 => HashAlgorithm::Sha2512,
        other => return Err(Error::Parse(format!("unsupported digest algorithm {other}"))),
    })
}

fn signer_matches(sid: &SignerIdentifier, leaf: &Certificate) -> bool {
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(id) => {
            leaf.tbs_certificate.issuer == id.issuer
                && leaf.tbs_certificate.serial_number == id.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => leaf
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .filter(|ext| ext.extn_id == ID_SUBJECT_KEY_IDENTIFIER)
            .filter_map(|ext| {
                x509_cert::ext::pkix::SubjectKeyIdentifier::from_der(ext.extn_value.as_bytes()).ok()
            })
            .any(|leaf_ski| &leaf_ski == ski),
    }
}

/// RFC 5652 §5.4: with signed attributes, the signature covers their DER
/// (as a `SET OF`), and the message-digest attribute must be the digest of
/// the content; the content-type attribute must name that content.
fn verify_signed_attributes(
    signer_info: &SignerInfo,
    tst_info_der: &[u8],
    leaf: &Certificate,
) -> Result<()> {
    let attrs = signer_info.signed_attrs.as_ref().ok_or_else(|| {
        Error::SignatureVerificationError("SignerInfo has no signed attributes".into())
    })?;
    let single_value = |oid: ObjectIdentifier| -> Result<&der::Any> {
        let mut found = attrs.iter().filter(|a| a.oid == oid);
        let attr = found.next().ok_or_else(|| {
            Error::SignatureVerificationError(format!("signed attribute {oid} is missing"))
        })?;
        if found.next().is_some() || attr.values.len() != 1 {
            return Err(Error::SignatureVerificationError(format!(
                "signed attribute {oid} must occur once with one value"
            )));
        }
        attr.values
            .get(0)
            .ok_or_else(|| Error::SignatureVerificationError(format!("attribute {oid} is empty")))
    };

    let content_type: ObjectIdentifier = single_value(ID_CONTENT_TYPE)?
        .decode_as()
        .map_err(|e| Error::parse("content-type attribute", e))?;
    if content_type != ID_CT_TST_INFO {
        return Err(Error::SignatureVerificationError(format!(
            "content-type attribute {content_type} is not id-ct-TSTInfo"
        )));
    }

    let claimed = single_value(ID_MESSAGE_DIGEST)?
        .decode_as::<OctetStringRef<'_>>()
        .map_err(|e| Error::parse("message-digest attribute", e))?;
    let computed = digest(&signer_info.digest_alg.oid, tst_info_der)?;
    if claimed.as_bytes() != computed.as_slice() {
        return Err(Error::HashMismatch {
            expected: hex::encode(claimed.as_bytes()),
            actual: hex::encode(computed),
        });
    }

    let signed_bytes = attrs
        .to_der()
        .map_err(|e| Error::parse("re-encoding signed attributes", e))?;
    let spki = leaf
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| Error::parse("TSA public key", e))?;
    let public_key = DerPublicKey::new(spki);
    let hash = hash_algorithm(&signer_info.digest_alg.oid)?;
    let scheme = KeyAlgorithm::from_spki(&public_key)
        .and_then(|alg| alg.resolve_signing_scheme(hash))
        .map_err(|e| Error::SignatureVerificationError(e.to_string()))?;
    sigstore_crypto::verify_signature(
        &public_key,
        &signed_bytes,
        &SignatureBytes::from_bytes(signer_info.signature.as_bytes()),
        scheme,
    )
    .map_err(|e| Error::SignatureVerificationError(e.to_string()))
}

/// The leaf must chain to the authority's root through the authority's own
/// intermediates, be valid at the signed time, and carry timeStamping.
fn verify_chain(authority: &TsaAuthority, at: Timestamp) -> Result<()> {
    let leaf_der = CertificateDer::from(authority.leaf.as_bytes());
    let leaf = webpki::EndEntityCert::try_from(&leaf_der)
        .map_err(|e| Error::CertificateValidationError(format!("TSA leaf: {e}")))?;
    let root_der = CertificateDer::from(authority.root.as_bytes());
    let anchor = webpki::anchor_from_trusted_cert(&root_der)
        .map_err(|e| Error::CertificateValidationError(format!("TSA root: {e}")))?;
    let intermediates: Vec<CertificateDer<'_>> = authority
        .intermediates
        .iter()
        .map(|c| CertificateDer::from(c.as_bytes()))
        .collect();
    let seconds = u64::try_from(at.as_second())
        .map_err(|_| Error::Parse("timestamp before the Unix epoch".into()))?;
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds));
    leaf.verify_for_usage(
        WEBPKI_VERIFICATION_ALGS,
        &[anchor],
        &intermediates,
        time,
        webpki::KeyUsage::required(ID_KP_TIME_STAMPING.as_bytes()),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| Error::CertificateValidationError(format!("{e:?}")))
}
