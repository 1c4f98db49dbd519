//! What is refused before any cryptography: malformed or deeply nested
//! JSON, unknown or missing media types, oversized bundles, too many tlog
//! entries, timestamps or DSSE signatures, a DSSE envelope without exactly
//! one signature, and a payloadType that is not in-toto. Inputs are the
//! kit's sigstore-js provenance with one field changed and the `reject`
//! bundles of `cases.json`.

use provgate::verify::{ArtifactInput, VerifyError, VerifyLimits};
use serde_json::json;

use crate::common::evidence::{
    assert_readable, kit_verifier_with, must_fail, mutate, shared, tag_schema_source,
};

use super::cases::{Case, Input, expect_failure};
use super::support::verify_kit;

#[test]
fn unknown_bundle_media_type_is_reported_as_such() {
    let bad = mutate(&shared().prov, |v| {
        v["mediaType"] = "application/vnd.dev.sigstore.bundle.v9.9+json".into();
    });
    let err = must_fail(verify_kit(&bad));
    assert!(
        matches!(&err, VerifyError::UnknownMediaType(m) if m.contains("v9.9")),
        "{err:?}"
    );
    assert_readable(&err, &["unknown bundle media type", "v9.9"]);
}

#[test]
fn malformed_json_is_malformed() {
    let prov = &shared().prov;
    for bad in [
        &prov[..prov.len() / 2],
        b"".as_slice(),
        b"[]".as_slice(),
        b"{\"mediaType\": 7}".as_slice(),
        b"\xff\xfe{}".as_slice(),
    ] {
        let err = must_fail(verify_kit(bad));
        assert!(matches!(&err, VerifyError::Malformed(_)), "{err:?}");
        assert_readable(&err, &["malformed bundle"]);
    }
}

#[test]
fn bundle_without_media_type_is_malformed() {
    let bad = mutate(&shared().prov, |v| {
        v.as_object_mut().unwrap().remove("mediaType");
    });
    let err = must_fail(verify_kit(&bad));
    assert!(matches!(&err, VerifyError::Malformed(_)), "{err:?}");
    assert_readable(&err, &["malformed bundle", "no mediaType"]);
}

#[test]
fn deeply_nested_json_is_malformed_not_a_stack_overflow() {
    let mut deep =
        String::from("{\"mediaType\":\"application/vnd.dev.sigstore.bundle.v0.3+json\",\"x\":");
    deep.push_str(&"[".repeat(100_000));
    deep.push_str(&"]".repeat(100_000));
    deep.push('}');
    let err = must_fail(verify_kit(deep.as_bytes()));
    assert!(matches!(&err, VerifyError::Malformed(_)), "{err:?}");
    assert_readable(&err, &["malformed bundle", "recursion limit"]);
}

#[test]
fn oversized_bundle_is_too_large_and_names_the_limit() {
    let prov = &shared().prov;
    let limits = VerifyLimits {
        max_bundle_bytes: 1024,
        ..VerifyLimits::default()
    };
    let err = must_fail(kit_verifier_with(limits.clone()).verify_bundle(
        prov,
        &shared().image.digest,
        tag_schema_source(),
    ));
    assert!(
        matches!(&err, VerifyError::TooLarge { what: "bundle", size, limit: 1024 } if *size == prov.len()),
        "{err:?}"
    );
    assert_readable(&err, &["1024", "maxBundleBytes", &prov.len().to_string()]);

    // At exactly the limit the size check passes.
    let exact = VerifyLimits {
        max_bundle_bytes: prov.len(),
        ..limits
    };
    kit_verifier_with(exact)
        .verify_bundle(prov, &shared().image.digest, tag_schema_source())
        .expect("a bundle of exactly the limit verifies");
}

fn duplicate_array(bundle: &[u8], pointer: &str, n: usize) -> Vec<u8> {
    mutate(bundle, |v| {
        let arr = v.pointer_mut(pointer).unwrap().as_array_mut().unwrap();
        let first = arr[0].clone();
        arr.clear();
        arr.extend(std::iter::repeat_n(first, n));
    })
}

#[test]
fn too_many_tlog_entries_are_refused_before_parsing() {
    let bad = duplicate_array(&shared().prov, "/verificationMaterial/tlogEntries", 33);
    let err = must_fail(verify_kit(&bad));
    assert!(
        matches!(
            &err,
            VerifyError::TooMany {
                what: "transparency-log entries",
                count: 33,
                limit: 32
            }
        ),
        "{err:?}"
    );
    assert_readable(&err, &["transparency-log entries", "33", "32"]);

    // A lower configured limit applies; the genuine bundle sits at it.
    let one = VerifyLimits {
        max_tlog_entries: 1,
        ..VerifyLimits::default()
    };
    let two = duplicate_array(&shared().prov, "/verificationMaterial/tlogEntries", 2);
    let err = must_fail(kit_verifier_with(one.clone()).verify_bundle(
        &two,
        &shared().image.digest,
        tag_schema_source(),
    ));
    assert!(
        matches!(
            &err,
            VerifyError::TooMany {
                count: 2,
                limit: 1,
                ..
            }
        ),
        "{err:?}"
    );
    kit_verifier_with(one)
        .verify_bundle(&shared().prov, &shared().image.digest, tag_schema_source())
        .expect("one entry with a limit of one verifies");
}

#[test]
fn too_many_rfc3161_timestamps_are_refused() {
    let bad = duplicate_array(
        &shared().prov,
        "/verificationMaterial/timestampVerificationData/rfc3161Timestamps",
        33,
    );
    let err = must_fail(verify_kit(&bad));
    assert!(
        matches!(
            &err,
            VerifyError::TooMany {
                what: "RFC 3161 timestamps",
                count: 33,
                limit: 32
            }
        ),
        "{err:?}"
    );
    assert_readable(&err, &["RFC 3161 timestamps", "33", "32"]);
}

#[test]
fn too_many_dsse_signatures_are_refused_and_two_are_malformed() {
    let many = duplicate_array(&shared().prov, "/dsseEnvelope/signatures", 33);
    let err = must_fail(verify_kit(&many));
    assert!(
        matches!(
            &err,
            VerifyError::TooMany {
                what: "DSSE signatures",
                count: 33,
                limit: 32
            }
        ),
        "{err:?}"
    );
    assert_readable(&err, &["DSSE signatures", "33"]);

    // Within the limit, a Sigstore bundle still carries exactly one
    // (advisory class 1, see tests/it/advisories.rs).
    let two = duplicate_array(&shared().prov, "/dsseEnvelope/signatures", 2);
    let err = must_fail(verify_kit(&two));
    assert!(
        matches!(&err, VerifyError::DsseSignatureCount(2)),
        "{err:?}"
    );
    assert_readable(&err, &["exactly one signature, found 2"]);

    let zero = mutate(&shared().prov, |v| {
        v["dsseEnvelope"]["signatures"] = json!([])
    });
    let err = must_fail(verify_kit(&zero));
    assert!(
        matches!(&err, VerifyError::DsseSignatureCount(0)),
        "{err:?}"
    );
    assert_readable(&err, &["exactly one signature, found 0"]);
}

#[test]
fn payload_type_changed_to_json_is_rejected_as_not_in_toto() {
    let bad = mutate(&shared().prov, |v| {
        v["dsseEnvelope"]["payloadType"] = "application/json".into();
    });
    let err = must_fail(verify_kit(&bad));
    assert!(
        matches!(&err, VerifyError::PayloadType(t) if t == "application/json"),
        "{err:?}"
    );
    assert_readable(
        &err,
        &[
            "payloadType",
            "application/json",
            "application/vnd.in-toto+json",
        ],
    );
}

#[test]
fn py_tsa_many_timestamps_is_rejected_for_too_many_timestamps() {
    let err = expect_failure("py-tsa-many-timestamps", "reject");
    assert!(
        matches!(
            err,
            VerifyError::TooMany {
                what: "RFC 3161 timestamps",
                count: 33,
                limit: 32
            }
        ),
        "{err:?}"
    );
    assert_readable(&err, &["RFC 3161 timestamps: 33 found", "32"]);
}

#[test]
fn go_dsse_2sigs_is_rejected_for_two_dsse_signatures() {
    let err = expect_failure("go-dsse-2sigs", "reject");
    assert!(
        matches!(&err, VerifyError::DsseSignatureCount(2)),
        "{err:?}"
    );
    assert_readable(&err, &["exactly one signature, found 2"]);
    // Under a limit of one signature it is refused before parsing.
    let case = Case::load("go-dsse-2sigs");
    let limits = VerifyLimits {
        max_signatures: 1,
        ..VerifyLimits::default()
    };
    let Input::Digest(d) = &case.input else {
        panic!()
    };
    let err = case
        .verifier(limits)
        .verify_artifact(&case.bundle, ArtifactInput::Digest(d))
        .unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::TooMany {
                what: "DSSE signatures",
                count: 2,
                limit: 1
            }
        ),
        "{err:?}"
    );
}

#[test]
fn cosign_2022_blob_cert_rekor_timestamps_is_rejected_as_malformed() {
    let err = expect_failure("cosign-2022-blob-cert-rekor-timestamps", "reject");
    assert!(matches!(&err, VerifyError::Malformed(_)), "{err:?}");
    assert_readable(&err, &["malformed bundle", "X509Certificate"]);
}

#[test]
fn cosign_2022_dsse_cert_is_rejected_as_malformed() {
    let err = expect_failure("cosign-2022-dsse-cert", "reject");
    assert!(matches!(&err, VerifyError::Malformed(_)), "{err:?}");
    assert_readable(&err, &["malformed bundle"]);
}

#[test]
fn cosign_2022_dsse_cert_rekor_is_rejected_as_malformed() {
    let err = expect_failure("cosign-2022-dsse-cert-rekor", "reject");
    assert!(matches!(&err, VerifyError::Malformed(_)), "{err:?}");
    assert_readable(&err, &["malformed bundle"]);
}

#[test]
fn cosign_2022_dsse_key_is_rejected_for_a_non_in_toto_payload_type() {
    let err = expect_failure("cosign-2022-dsse-key", "reject");
    assert!(
        matches!(&err, VerifyError::PayloadType(t) if t == "text/json"),
        "{err:?}"
    );
    assert_readable(&err, &["payloadType \"text/json\""]);
}
