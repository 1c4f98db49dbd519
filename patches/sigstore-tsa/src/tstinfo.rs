//! The parts of a `TimeStampToken` that verification needs.
//!
//! ```text
//! TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken TimeStampToken OPTIONAL }
//! TimeStampToken ::= ContentInfo   -- contentType id-signedData, eContentType id-ct-TSTInfo
//! TSTInfo ::= SEQUENCE {
//!    version INTEGER { v1(1) }, policy TSAPolicyId, messageImprint MessageImprint,
//!    serialNumber INTEGER, genTime GeneralizedTime, accuracy Accuracy OPTIONAL,
//!    ordering BOOLEAN DEFAULT FALSE, nonce INTEGER OPTIONAL,
//!    tsa [0] GeneralName OPTIONAL, extensions [1] IMPLICIT Extensions OPTIONAL }
//! MessageImprint ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, hashedMessage OCTET STRING }
//! ```
//!
//! `TSTInfo` is decoded by hand (with der's reader, field by field) because
//! `genTime` needs the fractional-second parser in [`crate::gentime`]; every
//! other structure uses the `cms` and `x509-cert` types.

use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use const_oid::ObjectIdentifier;
use der::asn1::{AnyRef, Int, OctetStringRef};
use der::{Decode, Encode, Reader, SliceReader, Tag};
use x509_cert::spki::AlgorithmIdentifierOwned;

use crate::error::{Error, Result};

const ID_SIGNED_DATA: ObjectIdentifier = const_oid::db::rfc5911::ID_SIGNED_DATA;
/// id-ct-TSTInfo, RFC 3161 §2.4.2.
pub(crate) const ID_CT_TST_INFO: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");

/// PKIStatus values that carry a token (RFC 3161 §2.4.2).
const GRANTED: u8 = 0;
const GRANTED_WITH_MODS: u8 = 1;

/// A decoded `TSTInfo` with the fields verification uses.
pub(crate) struct TstInfo {
    pub hash_algorithm: ObjectIdentifier,
    pub hashed_message: Vec<u8>,
    pub gen_time: jiff::Timestamp,
}

/// A parsed token: its `SignedData`, the DER of its `TSTInfo` (which the
/// signed attributes commit to) and the decoded `TSTInfo`.
pub(crate) struct Token {
    pub signed_data: SignedData,
    pub tst_info_der: Vec<u8>,
    pub tst_info: TstInfo,
}

/// Parses a `TimeStampToken`, or a `TimeStampResp` that wraps one.
pub(crate) fn parse_token(bytes: &[u8]) -> Result<Token> {
    let content_info = content_info(bytes)?;
    if content_info.content_type != ID_SIGNED_DATA {
        return Err(Error::Parse(format!(
            "content type {} is not id-signedData",
            content_info.content_type
        )));
    }
    let signed_data_der = content_info
        .content
        .to_der()
        .map_err(|e| Error::parse("re-encoding SignedData", e))?;
    let signed_data =
        SignedData::from_der(&signed_data_der).map_err(|e| Error::parse("decoding SignedData", e))?;
    if signed_data.encap_content_info.econtent_type != ID_CT_TST_INFO {
        return Err(Error::Parse(format!(
            "encapsulated content type {} is not id-ct-TSTInfo",
            signed_data.encap_content_info.econtent_type
        )));
    }
    let econtent = signed_data
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or(Error::NoTstInfo)?;
    // eContent is an OCTET STRING holding the DER of TSTInfo.
    let octets = econtent
        .decode_as::<OctetStringRef<'_>>()
        .map_err(|e| Error::parse("decoding eContent", e))?;
    let tst_info_der = octets.as_bytes().to_vec();
    let tst_info = parse_tst_info(&tst_info_der)?;
    Ok(Token {
        signed_data,
        tst_info_der,
        tst_info,
    })
}

/// Returns the `ContentInfo` of a bare token or of a granted `TimeStampResp`.
fn content_info(bytes: &[u8]) -> Result<ContentInfo> {
    let mut reader = SliceReader::new(bytes).map_err(|e| Error::parse("token", e))?;
    // A ContentInfo starts with an OID; a TimeStampResp with PKIStatusInfo (a SEQUENCE).
    let inner = der::Header::decode(&mut reader)
        .and_then(|_| reader.peek_tag())
        .map_err(|e| Error::parse("token", e))?;
    if inner == Tag::ObjectIdentifier {
        return ContentInfo::from_der(bytes).map_err(|e| Error::parse("decoding ContentInfo", e));
    }
    let mut reader = SliceReader::new(bytes).map_err(|e| Error::parse("token", e))?;
    let token = reader
        .sequence(|r| {
            let status = r.sequence(|s| {
                let status: u8 = s.decode()?;
                while !s.is_finished() {
                    let _: AnyRef<'_> = s.decode()?;
                }
                Ok(status)
            })?;
            let token: Option<ContentInfo> = if r.is_finished() {
                None
            } else {
                Some(r.decode()?)
            };
            Ok((status, token))
        })
        .and_then(|v| reader.finish(v))
        .map_err(|e| Error::parse("decoding TimeStampResp", e))?;
    match token {
        (GRANTED | GRANTED_WITH_MODS, Some(ci)) => Ok(ci),
        (GRANTED | GRANTED_WITH_MODS, None) => {
            Err(Error::Parse("TimeStampResp has no timeStampToken".into()))
        }
        (status, _) => Err(Error::Parse(format!(
            "TimeStampResp status {status} is not granted"
        ))),
    }
}

fn parse_tst_info(der_bytes: &[u8]) -> Result<TstInfo> {
    let mut reader = SliceReader::new(der_bytes).map_err(|e| Error::parse("TSTInfo", e))?;
    let parsed = reader
        .sequence(|r| {
            let version: u8 = r.decode()?;
            if version != 1 {
                return Err(Tag::Integer.value_error());
            }
            let _policy: ObjectIdentifier = r.decode()?;
            let (hash_algorithm, hashed_message) = r.sequence(|m| {
                let alg: AlgorithmIdentifierOwned = m.decode()?;
                let hashed: OctetStringRef<'_> = m.decode()?;
                Ok((alg.oid, hashed.as_bytes().to_vec()))
            })?;
            let _serial: Int = r.decode()?;
            let gen_time: AnyRef<'_> = r.decode()?;
            if der::Tagged::tag(&gen_time) != Tag::GeneralizedTime {
                return Err(der::Tagged::tag(&gen_time).unexpected_error(Some(Tag::GeneralizedTime)));
            }
            let gen_time_value = gen_time.value().to_vec();
            // accuracy, ordering, nonce, tsa and extensions are not needed;
            // they are still consumed so that trailing garbage is rejected.
            while !r.is_finished() {
                let _: AnyRef<'_> = r.decode()?;
            }
            Ok((hash_algorithm, hashed_message, gen_time_value))
        })
        .and_then(|v| reader.finish(v))
        .map_err(|e| Error::parse("decoding TSTInfo", e))?;
    let (hash_algorithm, hashed_message, gen_time_value) = parsed;
    let gen_time = crate::gentime::parse(&gen_time_value).map_err(Error::Parse)?;
    Ok(TstInfo {
        hash_algorithm,
        hashed_message,
        gen_time,
    })
}
