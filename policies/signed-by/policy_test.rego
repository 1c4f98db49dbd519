# Tests of signed-by (inputs bound locally before `with input as`, see
# lib/provgate_test.rego).
package provgate.signed_by_test

import data.provgate.contract

results(doc) := r if {
	r := contract.deny with input as doc
}

ids(doc) := {v.requirement | some v in results(doc)}

signed := data.testdata.cosign_signature

sig := signed.signatures[0]

test_cosign_signature_passes if {
	doc := signed
	count(results(doc)) == 0
}

test_key_signature_without_tlog_passes if {
	# A key authority with `tlog: optional` admitted it.
	doc := data.testdata.key_signed
	doc.signatures[0].signer.kind == "key"
	count(results(doc)) == 0
}

test_attestation_alone_passes if {
	doc := data.testdata.attestation_only
	count(results(doc)) == 0
}

test_bundle_message_signature_passes if {
	doc := object.union(signed, {"signatures": [object.union(sig, {"payload": null, "source": {"kind": "referrers"}})]})
	count(results(doc)) == 0
}

test_no_evidence_denies if {
	doc := data.testdata.no_evidence
	ids(doc) == {"signed-by-trusted-signer"}
	some v in results(doc)
	v.msg == "no verified signature or attestation for this image digest from a trusted signer"
	contains(v.fix, "cosign sign")
}

test_signature_for_another_digest_denies if {
	other := "sha256:0b7f3c9a1d2e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f90"
	doc := object.union(signed, {"signatures": [object.union(sig, {"subject": other, "payload": {"critical": {"image": {"docker-manifest-digest": other}}}})]})
	ids(doc) == {"signed-by-trusted-signer"}
}

test_signature_payload_naming_another_digest_denies if {
	doc := object.union(signed, {"signatures": [object.union(sig, {"payload": {"critical": {"image": {"docker-manifest-digest": "sha256:0b7f3c9a1d2e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f90"}}}})]})
	ids(doc) == {"signed-by-trusted-signer"}
}

test_signature_for_the_judged_platform_passes if {
	p := signed.image.digest
	doc := object.union(signed, {"signatures": [object.union(sig, {"subject": p, "payload": {"critical": {"image": {"docker-manifest-digest": p}}}})]})
	count(results(doc)) == 0
}

test_signature_for_the_index_covers_the_platform if {
	p := signed.image.index
	doc := object.union(signed, {"signatures": [object.union(sig, {"subject": p, "payload": {"critical": {"image": {"docker-manifest-digest": p}}}})]})
	count(results(doc)) == 0
}

test_signature_for_another_platform_of_the_index_denies if {
	# The linux/arm64 manifest of the same index: signing it says nothing
	# about the linux/amd64 image that is judged.
	p := "sha256:bc793a5d49b7df8f79d4472d2236866346862f74f96f201e511bea53ff2399f5"
	doc := object.union(signed, {"signatures": [object.union(sig, {"subject": p, "payload": {"critical": {"image": {"docker-manifest-digest": p}}}})]})
	ids(doc) == {"signed-by-trusted-signer"}
}

test_unknown_predicate_type_attestation_still_proves_the_signer if {
	# Any admitted attestation bound to the digest shows a trusted signer vouched for it.
	a := data.testdata.attestation_only.attestations[0]
	b := object.union(a, {"predicateType": "https://example.com/anything/v1", "statement": {"predicateType": "https://example.com/anything/v1"}})
	doc := object.union(data.testdata.attestation_only, {"attestations": [b]})
	count(results(doc)) == 0
}

test_missing_and_hostile_input_denies if {
	doc := {}
	ids(doc) == {"signed-by-trusted-signer"}
	doc2 := object.union(signed, {"signatures": "yes", "attestations": {"a": 1}})
	ids(doc2) == {"signed-by-trusted-signer"}
	doc3 := object.union(signed, {"image": {"digest": 42, "index": 42}})
	ids(doc3) == {"signed-by-trusted-signer"}
}

test_parameters_are_rejected if {
	doc := object.union(signed, {"contract": {"parameters": {"signers": ["x"]}}})
	ids(doc) == {"signed-by-parameters"}
}
