//! The transparency log: Rekor entry kinds, inclusion proofs, signed entry
//! timestamps (inclusion promises), checkpoints and log ids, and whether an
//! authority's tlog requirement is met. Evidence is the kit's sigstore-js
//! provenance and cosign layers, cosign's public-good OCI attestation and
//! the cosign `cases.json` bundles, with one field changed where tampered.

use provgate::verify::{KeyFailure, TimeSource, TrustStore, VerifyError};
use sigstore_verify::{Error as SvError, TransparencyLogError as TlogError};

use crate::common::evidence::{
    assert_readable, edit_str, fixture_verifier, flip_b64, json, key_authority, key_error,
    keyless_authority, keyless_error, must_fail, mutate, push_image, shared, sign_provenance,
    tag_schema_source,
};
use crate::common::kit::{GH_ID, GH_ISS};

use super::cases::expect_failure;
use super::support::{
    TLOG0, cosign_oci, cosign_setup, kit_rejects, reference_verdict, trust_with_key, try_sig_layer,
    verified_facts, verify_sig_layer,
};

#[test]
fn sigstore_js_provenance_with_intoto_entry_verifies() {
    let image = push_image("intoto", &[]);
    let bundle = sign_provenance(&image, &["--entry-type", "intoto"]);
    let facts = verified_facts(&bundle, &image.digest);
    assert_eq!(facts.tlog()[0].kind, "intoto/0.0.2");
    assert!(facts.tlog_verified());
    assert!(keyless_authority(GH_ID, GH_ISS).admits(&facts).is_ok());
    let id = ["--identity", GH_ID, "--issuer", GH_ISS];
    assert!(reference_verdict(
        "verify-js",
        &bundle,
        &image.digest.to_string(),
        &id
    ));
}

#[test]
fn tampered_inclusion_proof_root_hash_no_longer_matches_the_signed_checkpoint() {
    // The proof's rootHash duplicates the checkpoint's; the bundle validation
    // that precedes any cryptography catches the difference.
    let bad = mutate(&shared().prov, |v| {
        edit_str(v, &format!("{TLOG0}/inclusionProof/rootHash"), |s| {
            flip_b64(s, 0)
        });
    });
    let (err, _) = kit_rejects(&bad);
    assert!(
        matches!(
            keyless_error(&err),
            SvError::Bundle(sigstore_verify::bundle::Error::CheckpointRootMismatch)
        ),
        "{err:?}"
    );
    assert_readable(
        &err,
        &["inclusion proof root hash does not match checkpoint root hash"],
    );
}

#[test]
fn tampered_inclusion_proof_hash_fails_the_inclusion_proof() {
    let bad = mutate(&shared().prov, |v| {
        edit_str(v, &format!("{TLOG0}/inclusionProof/hashes/0"), |s| {
            flip_b64(s, 5)
        });
    });
    let (err, _) = kit_rejects(&bad);
    assert!(
        matches!(
            keyless_error(&err),
            SvError::TransparencyLog(TlogError::InclusionProof(_))
        ),
        "{err:?}"
    );
    assert_readable(&err, &["invalid inclusion proof"]);
}

#[test]
fn tampered_signed_entry_timestamp_fails_the_inclusion_promise() {
    let bad = mutate(&shared().prov, |v| {
        edit_str(
            v,
            &format!("{TLOG0}/inclusionPromise/signedEntryTimestamp"),
            |s| flip_b64(s, -1),
        );
    });
    let (err, _) = kit_rejects(&bad);
    assert!(
        matches!(
            keyless_error(&err),
            SvError::TransparencyLog(TlogError::InclusionPromise(_))
        ),
        "{err:?}"
    );
    assert_readable(&err, &["invalid inclusion promise", "SET"]);
}

#[test]
fn tampered_checkpoint_signature_fails_the_checkpoint() {
    let bad = mutate(&shared().prov, |v| {
        edit_str(
            v,
            &format!("{TLOG0}/inclusionProof/checkpoint/envelope"),
            |note| {
                // The signature line is "— <origin> <base64(keyhint || sig)>".
                let (body, sig_line) = note.trim_end().rsplit_once('\n').unwrap();
                let (prefix, sig) = sig_line.rsplit_once(' ').unwrap();
                format!("{body}\n{prefix} {}\n", flip_b64(sig, -1))
            },
        );
    });
    let (err, _) = kit_rejects(&bad);
    assert!(
        matches!(
            keyless_error(&err),
            SvError::TransparencyLog(TlogError::Checkpoint(_))
        ),
        "{err:?}"
    );
    assert_readable(&err, &["invalid checkpoint", "No valid Rekor signature"]);
}

#[test]
fn checkpoint_for_another_tree_size_fails_the_checkpoint() {
    // Change the tree size line of the signed note: the signature no longer
    // covers it.
    let bad = mutate(&shared().prov, |v| {
        edit_str(
            v,
            &format!("{TLOG0}/inclusionProof/checkpoint/envelope"),
            |note| {
                let mut lines: Vec<String> = note.split('\n').map(str::to_owned).collect();
                let size: u64 = lines[1].parse().unwrap();
                lines[1] = (size + 1).to_string();
                lines.join("\n")
            },
        );
    });
    let (err, _) = kit_rejects(&bad);
    assert!(
        matches!(
            keyless_error(&err),
            SvError::TransparencyLog(TlogError::Checkpoint(_))
        ),
        "{err:?}"
    );
    assert_readable(&err, &["invalid checkpoint"]);
}

#[test]
fn shifted_integrated_time_fails_the_inclusion_promise() {
    for shift in [-3600_i64, -1, 1] {
        let bad = mutate(&shared().prov, |v| {
            edit_str(v, &format!("{TLOG0}/integratedTime"), |t| {
                (t.parse::<i64>().unwrap() + shift).to_string()
            });
        });
        let (err, _) = kit_rejects(&bad);
        assert!(
            matches!(
                keyless_error(&err),
                SvError::TransparencyLog(TlogError::InclusionPromise(_))
            ),
            "shift {shift}: {err:?}"
        );
        assert_readable(&err, &["invalid inclusion promise"]);
    }
}

#[test]
fn canonicalized_body_of_another_entry_fails_the_inclusion_promise() {
    // The SET signs the body, so swapping the body alone breaks it first.
    let s = shared();
    let other = json(&s.prov_again)
        .pointer(&format!("{TLOG0}/canonicalizedBody"))
        .unwrap()
        .clone();
    let bad = mutate(&s.prov, |v| {
        *v.pointer_mut(&format!("{TLOG0}/canonicalizedBody"))
            .unwrap() = other;
    });
    let (err, _) = kit_rejects(&bad);
    assert!(
        matches!(
            keyless_error(&err),
            SvError::TransparencyLog(TlogError::InclusionPromise(_))
        ),
        "{err:?}"
    );
    assert_readable(&err, &["invalid inclusion promise"]);
}

// A genuine log entry of another artifact, certificate or key, and the same
// entry twice: advisory class 4 in tests/it/advisories.rs.

#[test]
fn unknown_log_id_fails_the_inclusion_promise() {
    let bad = mutate(&shared().prov, |v| {
        edit_str(v, &format!("{TLOG0}/logId/keyId"), |s| flip_b64(s, 0));
    });
    let (err, _) = kit_rejects(&bad);
    assert!(
        matches!(
            keyless_error(&err),
            SvError::TransparencyLog(TlogError::InclusionPromise(m)) if m.contains("No log key")
        ),
        "{err:?}"
    );
    assert_readable(&err, &["invalid inclusion promise"]);
}

#[test]
fn cosign_oci_attestation_fixture_with_backdated_integrated_time_fails_the_set() {
    let (bundle, digest) = cosign_oci();
    let bad = mutate(&bundle, |v| {
        edit_str(v, &format!("{TLOG0}/integratedTime"), |t| {
            (t.parse::<i64>().unwrap() - 86_400).to_string()
        });
    });
    let err = must_fail(
        fixture_verifier("pgi", "cosign/trusted_root_pgi.json").verify_bundle(
            &bad,
            &digest,
            tag_schema_source(),
        ),
    );
    assert!(
        matches!(
            keyless_error(&err),
            SvError::TransparencyLog(TlogError::InclusionPromise(_))
        ),
        "{err:?}"
    );
    assert_readable(&err, &["invalid inclusion promise"]);
}

#[test]
fn cosign_2022_blob_key_rekor_proof_is_rejected_for_a_missing_inclusion_promise() {
    let err = expect_failure("cosign-2022-blob-key-rekor-proof", "reject");
    assert!(
        matches!(
            key_error(&err),
            SvError::Bundle(sigstore_verify::bundle::Error::MissingInclusionPromise(_))
        ),
        "{err:?}"
    );
    assert!(!matches!(err, VerifyError::Key(KeyFailure::NoKeys)));
    assert_readable(&err, &["must have an inclusion promise"]);
}

#[test]
fn cosign_sig_without_rekor_verifies_only_as_no_tlog_and_is_refused_when_tlog_is_required() {
    let s = cosign_setup();
    let trust = trust_with_key(&s.pair);
    let v = verify_sig_layer(&s.unlogged, &trust);
    let facts = v.facts();
    assert!(!facts.tlog_verified());
    assert!(facts.tlog().is_empty());
    assert_eq!(facts.time().source, TimeSource::None);
    let err = key_authority(&trust, "cosign", true)
        .admits(facts)
        .unwrap_err();
    assert_readable(&err, &["requires a verified transparency-log entry"]);
    key_authority(&trust, "cosign", false)
        .admits(facts)
        .expect("admitted when the authority does not require a tlog");
}

#[test]
fn cosign_sig_with_rekor_bundle_and_a_key_only_trust_store_fails_the_tlog_check() {
    // Without a trusted root there is no Rekor key: the SET cannot be checked.
    let s = cosign_setup();
    let trust = TrustStore::builder()
        .key_pem("cosign", &s.pair.public_pem)
        .unwrap()
        .build()
        .unwrap();
    let err = try_sig_layer(&s.signed, &trust, &s.signed.digest).unwrap_err();
    assert!(
        matches!(key_error(&err), SvError::TransparencyLog(_)),
        "{err:?}"
    );
    assert_readable(&err, &["key \"cosign\""]);
}
