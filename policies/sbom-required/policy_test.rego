# Tests of sbom-required (inputs bound locally before `with input as`, see
# lib/provgate_test.rego).
package provgate.sbom_required_test

import data.provgate.contract

results(doc) := r if {
	r := contract.deny with input as doc
}

ids(doc) := {v.requirement | some v in results(doc)}

with_attestations(doc, atts) := object.union(doc, {"attestations": atts})

with_params(doc, ps) := object.union(doc, {"contract": {"parameters": ps}})

cdx := data.testdata.cyclonedx

cdx_sbom := cdx.attestations[1]

retyped(a, t) := object.union(a, {"predicateType": t, "statement": {"predicateType": t}})

replaced(a, predicate) := object.union(object.union(a, {"statement": {"predicate": null}}), {"statement": {"predicate": predicate}})

# --- sbom-present: passing -----------------------------------------------------

test_cyclonedx_for_index_digest_passes if {
	doc := cdx
	count(results(doc)) == 0
}

test_spdx_for_platform_digest_passes if {
	doc := data.testdata.spdx_platform
	doc.attestations[0].subject == doc.image.digest
	count(results(doc)) == 0
}

test_versioned_predicate_types_pass if {
	doc := with_attestations(cdx, [retyped(cdx_sbom, "https://cyclonedx.org/bom/v1.6")])
	count(results(doc)) == 0
	spdx := data.testdata.spdx_platform
	doc2 := with_attestations(spdx, [retyped(spdx.attestations[0], "https://spdx.dev/Document/v2.3")])
	count(results(doc2)) == 0
}

test_one_valid_sbom_is_enough if {
	doc := with_attestations(cdx, [replaced(cdx_sbom, {}), data.testdata.spdx_platform.attestations[0]])
	count(results(doc)) == 0
}

# --- sbom-present: failing -----------------------------------------------------

test_sbom_for_another_digest_denies if {
	doc := data.testdata.other_digest
	doc.attestations[0].subject != doc.image.digest
	ids(doc) == {"sbom-present"}
	some v in results(doc)
	v.msg == "no CycloneDX or SPDX SBOM attestation for this image digest from a trusted signer"
	contains(v.fix, "syft")
}

test_statement_for_another_digest_denies if {
	# provgate reported the image digest, but the signed statement names another.
	a := object.union(cdx_sbom, {"statement": {"subject": [{"name": "ghcr.io/acme/payments-api", "digest": {"sha256": "0b7f3c9a1d2e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f90"}}]}})
	doc := with_attestations(cdx, [a])
	ids(doc) == {"sbom-present"}
}

test_vulnerability_scan_is_not_an_sbom if {
	doc := data.testdata.vuln_only
	ids(doc) == {"sbom-present"}
}

test_unknown_predicate_types_are_not_sboms if {
	types := [
		"https://cyclonedx.org/bom/v2.0",
		"https://cyclonedx.org/bom/v1.",
		"https://cyclonedx.org/bom/v1.6/extra",
		"https://cyclonedx.org/BOM",
		"https://spdx.dev/Document/v3.0",
		"https://example.com/sbom/v1",
		"https://cyclonedx.org/bom.evil.example",
	]
	every t in types {
		doc := with_attestations(cdx, [retyped(cdx_sbom, t)])
		ids(doc) == {"sbom-present"}
	}
}

test_predicate_type_mismatch_denies if {
	a := object.union(cdx_sbom, {"statement": {"predicateType": "https://slsa.dev/provenance/v1"}})
	doc := with_attestations(cdx, [a])
	ids(doc) == {"sbom-present"}
}

test_empty_or_wrong_predicate_denies if {
	every p in [{}, null, "bom", {"bomFormat": "SPDX"}, {"spdxVersion": "SPDX-2.3"}] {
		doc := with_attestations(cdx, [replaced(cdx_sbom, p)])
		ids(doc) == {"sbom-present"}
	}
	doc := with_attestations(cdx, [replaced(cdx_sbom, {})])
	some v in results(doc)
	contains(v.msg, "is not a cyclonedx document")
}

test_format_not_accepted_denies if {
	doc := with_params(cdx, {"formats": ["spdx"]})
	ids(doc) == {"sbom-present"}
	some v in results(doc)
	v.msg == "no SPDX SBOM attestation for this image digest from a trusted signer"
}

test_no_attestations_at_all_denies if {
	doc := object.union(cdx, {"attestations": [], "signatures": []})
	ids(doc) == {"sbom-present"}
	doc2 := json.remove(cdx, ["attestations", "image"])
	ids(doc2) == {"sbom-present"}
}

test_hostile_attestation_entries if {
	doc := with_attestations(cdx, [null, 1, "sbom", [], {"predicateType": {"x": 1}}, object.union(cdx_sbom, {"subject": ["x"]})])
	ids(doc) == {"sbom-present"}
}

# --- sbom-required-parameters ------------------------------------------------------

test_parameter_errors_deny if {
	every ps in [{"formats": []}, {"formats": ["cyclonedx", "swid"]}, {"formats": "cyclonedx"}, {"format": ["spdx"]}] {
		doc := object.union(cdx, {"contract": {"parameters": null}})
		doc2 := with_params(doc, ps)
		ids(doc2) == {"sbom-required-parameters"}
	}
}
