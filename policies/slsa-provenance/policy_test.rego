# Tests of slsa-provenance. Inputs come from testdata/*.json; each test binds
# its input to a local variable before `with input as` (see the note in
# lib/provgate_test.rego).
package provgate.slsa_provenance_test

import data.provgate.contract
import data.provgate.lib

# --- helpers ------------------------------------------------------------------

results(doc) := r if {
	r := contract.deny with input as doc
}

ids(doc) := {v.requirement | some v in results(doc)}

with_attestations(doc, atts) := object.union(doc, {"attestations": atts})

with_params(doc, ps) := object.union(doc, {"contract": {"parameters": ps}})

gha := data.testdata.github_actions

gha_prov := gha.attestations[0]

bk_v1 := data.testdata.buildkit_v1.attestations[0]

# A copy of an attestation with its predicate deep-merged with `patch`.
patched(a, patch) := object.union(a, {"statement": {"predicate": patch}})

# A copy of an attestation whose predicate is replaced by `predicate`.
replaced(a, predicate) := object.union(object.union(a, {"statement": {"predicate": null}}), {"statement": {"predicate": predicate}})

# A copy of an attestation with predicateType t (in the input and the statement).
retyped(a, t) := object.union(a, {"predicateType": t, "statement": {"predicateType": t}})

key_signer := {"kind": "key", "keyId": "5f2b0e6a3c1d4e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f", "keyName": "acme-release"}

# --- slsa-provenance-present ------------------------------------------------------

test_github_actions_provenance_passes if {
	doc := gha
	count(results(doc)) == 0
}

test_buildkit_v1_provenance_passes if {
	doc := data.testdata.buildkit_v1
	count(results(doc)) == 0
}

test_buildkit_v02_provenance_passes if {
	doc := data.testdata.buildkit_v02
	count(results(doc)) == 0
}

test_no_provenance_denies if {
	# An SBOM, a vulnerability scan and a signature are not provenance.
	doc := data.testdata.no_provenance
	ids(doc) == {"slsa-provenance-present"}
}

test_denial_is_actionable if {
	doc := data.testdata.no_provenance
	some v in results(doc)
	v.msg == "no SLSA provenance attestation (https://slsa.dev/provenance/v1 or v0.2) for this image digest from a trusted builder identity"
	contains(v.fix, "actions/attest-build-provenance")
}

test_unknown_predicate_type_is_not_provenance if {
	doc := with_attestations(gha, [retyped(gha_prov, "https://slsa.dev/provenance/v9")])
	ids(doc) == {"slsa-provenance-present"}
}

test_provenance_for_another_digest_does_not_count if {
	other := "sha256:0b7f3c9a1d2e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f90"
	a := object.union(gha_prov, {"subject": other, "statement": {"subject": [{"name": "ghcr.io/acme/payments-api", "digest": {"sha256": substring(other, 7, -1)}}]}})
	doc := with_attestations(gha, [a])
	ids(doc) == {"slsa-provenance-present"}
}

test_statement_naming_another_digest_does_not_count if {
	a := object.union(gha_prov, {"statement": {"subject": [{"name": "ghcr.io/acme/payments-api", "digest": {"sha256": "0b7f3c9a1d2e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f90"}}]}})
	doc := with_attestations(gha, [a])
	ids(doc) == {"slsa-provenance-present"}
}

test_provenance_for_a_platform_counts if {
	doc := data.testdata.buildkit_v1
	bk_v1.subject == doc.image.digest
	count(results(doc)) == 0
}

test_provenance_for_another_platform_of_the_index_does_not_count if {
	# One attested platform never passes another: provenance bound to the
	# linux/arm64 manifest is not provenance of the linux/amd64 image.
	arm64 := "sha256:bc793a5d49b7df8f79d4472d2236866346862f74f96f201e511bea53ff2399f5"
	a := object.union(bk_v1, {"subject": arm64, "statement": {"subject": [{"name": "pkg:docker/ghcr.io/acme/payments-api@1.8.3?platform=linux%2Farm64", "digest": {"sha256": substring(arm64, 7, -1)}}]}})
	doc := with_attestations(data.testdata.buildkit_v1, [a])
	ids(doc) == {"slsa-provenance-present"}
}

test_missing_input_denies if {
	doc := {}
	"slsa-provenance-present" in ids(doc)
	doc2 := object.union(gha, {"attestations": null, "signatures": "none"})
	ids(doc2) == {"slsa-provenance-present"}
}

# --- slsa-provenance-signer -------------------------------------------------------

test_key_signed_provenance_denies if {
	doc := with_attestations(gha, [object.union(gha_prov, {"signer": key_signer})])
	ids(doc) == {"slsa-provenance-signer"}
}

test_key_signed_provenance_allowed_when_not_required if {
	# The source then comes from the provenance alone.
	doc := with_params(with_attestations(gha, [object.union(gha_prov, {"signer": key_signer})]), {"requireKeyless": false})
	count(results(doc)) == 0
}

test_provenance_without_tlog_denies if {
	doc := with_attestations(gha, [object.union(gha_prov, {"tlog": [], "time": {"source": "rfc3161", "value": "2026-11-24T09:12:31Z"}})])
	ids(doc) == {"slsa-provenance-signer"}
	doc2 := with_params(doc, {"requireTlog": false})
	count(results(doc2)) == 0
}

test_unverified_tlog_entry_denies if {
	entry := object.union(gha_prov.tlog[0], {"inclusionProof": false, "inclusionPromise": false})
	doc := with_attestations(gha, [object.union(gha_prov, {"tlog": [entry]})])
	ids(doc) == {"slsa-provenance-signer"}
}

# --- slsa-provenance-build-type -------------------------------------------------

test_build_type_not_allowed_denies if {
	a := patched(gha_prov, {"buildDefinition": {"buildType": "https://example.com/buildtypes/homegrown/v1"}})
	doc := with_attestations(gha, [a])
	ids(doc) == {"slsa-provenance-build-type"}
	some v in results(doc)
	contains(v.msg, "has build type https://example.com/buildtypes/homegrown/v1, which is not allowed")
}

test_build_type_missing_denies if {
	a := json.remove(gha_prov, ["statement/predicate/buildDefinition/buildType"])
	doc := with_attestations(gha, [a])
	ids(doc) == {"slsa-provenance-build-type"}
}

test_build_type_of_wrong_type_denies if {
	a := patched(gha_prov, {"buildDefinition": {"buildType": ["https://actions.github.io/buildtypes/workflow/v1"]}})
	doc := with_attestations(gha, [a])
	ids(doc) == {"slsa-provenance-build-type"}
}

test_build_type_allowed_by_binding if {
	a := patched(gha_prov, {"buildDefinition": {"buildType": "https://example.com/buildtypes/homegrown/v1"}})
	doc := with_params(with_attestations(gha, [a]), {"buildTypes": ["https://example.com/buildtypes/*"]})
	count(results(doc)) == 0
}

# --- slsa-provenance-builder ----------------------------------------------------

test_builder_not_allowed_denies if {
	a := patched(gha_prov, {"runDetails": {"builder": {"id": "https://jenkins.acme.example/job/payments-api/118"}}})
	doc := with_attestations(gha, [a])
	ids(doc) == {"slsa-provenance-builder"}
}

test_builder_missing_denies if {
	# BuildKit leaves builder.id empty unless the builder-id parameter is set.
	a := patched(bk_v1, {"runDetails": {"builder": {"id": ""}}})
	doc := with_attestations(data.testdata.buildkit_v1, [a])
	ids(doc) == {"slsa-provenance-builder"}
}

test_builder_as_object_denies if {
	a := patched(gha_prov, {"runDetails": {"builder": {"id": {"uri": "https://github.com/acme/payments-api/.github/workflows/release.yml@refs/tags/v1.8.3"}}}})
	doc := with_attestations(gha, [a])
	ids(doc) == {"slsa-provenance-builder"}
}

test_builder_restricted_to_org if {
	# The GitHub-hosted runner is allowed; a reusable-workflow builder id of
	# the organisation is matched with wildcards.
	doc := with_params(gha, {"builderIds": ["https://github.com/actions/runner/github-hosted"]})
	count(results(doc)) == 0
	a := patched(gha_prov, {"runDetails": {"builder": {"id": "https://github.com/acme/build/.github/workflows/release.yml@refs/tags/v1"}}})
	doc1 := with_params(with_attestations(gha, [a]), {"builderIds": ["https://github.com/acme/*/.github/workflows/release.yml@refs/tags/*"]})
	count(results(doc1)) == 0
	doc2 := with_params(gha, {"builderIds": ["https://github.com/other-org/*"]})
	ids(doc2) == {"slsa-provenance-builder"}
}

test_v1_type_with_v02_body_denies if {
	a := replaced(gha_prov, data.testdata.buildkit_v02.attestations[0].statement.predicate)
	doc := with_attestations(gha, [a])
	ids(doc) == {"slsa-provenance-build-type", "slsa-provenance-builder"}
}

# --- slsa-provenance-source -----------------------------------------------------

test_source_not_allowed_denies if {
	doc := with_params(gha, {"sourceRepositories": ["https://github.com/acme/payments-web"]})
	ids(doc) == {"slsa-provenance-source"}
}

test_source_allowed_by_org_pattern if {
	doc := with_params(gha, {"sourceRepositories": ["https://github.com/acme/*"]})
	count(results(doc)) == 0
}

test_source_claim_of_signer_must_also_match if {
	# The provenance claims acme/payments-api, but the certificate says the
	# workflow ran in a fork: every named source must be allowed.
	a := object.union(gha_prov, {"signer": {"extensions": {"sourceRepositoryURI": "https://github.com/mallory/payments-api"}}})
	doc := with_params(with_attestations(gha, [a]), {"sourceRepositories": ["https://github.com/acme/*"]})
	ids(doc) == {"slsa-provenance-source"}
	some v in results(doc)
	contains(v.msg, "names source repository https://github.com/mallory/payments-api, which is not allowed")
}

test_source_missing_denies if {
	a := json.remove(object.union(gha_prov, {"signer": key_signer}), [
		"statement/predicate/buildDefinition/externalParameters/workflow",
		"statement/predicate/buildDefinition/resolvedDependencies",
	])
	doc := with_params(with_attestations(gha, [a]), {"requireKeyless": false})
	ids(doc) == {"slsa-provenance-source"}
}

test_buildkit_git_context_source if {
	a := object.union(bk_v1, {"signer": key_signer})
	lib.source_repositories(a) == {"https://github.com/acme/payments-api"}
	doc := with_params(with_attestations(data.testdata.buildkit_v1, [a]), {"requireKeyless": false, "sourceRepositories": ["https://github.com/acme/payments-api"]})
	count(results(doc)) == 0
}

# --- several attestations ---------------------------------------------------------

test_violation_wins_over_compliant_provenance if {
	bad := patched(object.union(gha_prov, {"digest": "sha256:77e1b0c4d2a3f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4"}), {"runDetails": {"builder": {"id": "https://jenkins.acme.example/job/payments-api/118"}}})
	doc := with_attestations(gha, [gha_prov, bad])
	ids(doc) == {"slsa-provenance-builder"}
	count(results(doc)) == 1
}

test_each_violating_attestation_is_reported if {
	a := patched(object.union(gha_prov, {"digest": "sha256:77e1b0c4d2a3f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4"}), {"runDetails": {"builder": {"id": "https://jenkins.acme.example/job/1"}}})
	b := patched(object.union(gha_prov, {"digest": "sha256:88e1b0c4d2a3f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4"}), {"runDetails": {"builder": {"id": "https://jenkins.acme.example/job/2"}}})
	doc := with_attestations(gha, [a, b])
	count(results(doc)) == 2
}

# --- hostile content ----------------------------------------------------------------

test_hostile_predicates_deny_without_error if {
	a := object.union(gha_prov, {"statement": {"predicate": "not an object"}})
	doc := with_attestations(gha, [a])
	ids(doc) == {"slsa-provenance-build-type", "slsa-provenance-builder"}
	b := replaced(gha_prov, {"buildDefinition": {"externalParameters": {"workflow": {"repository": 42}}, "resolvedDependencies": "x"}, "runDetails": []})
	doc2 := with_attestations(gha, [b])
	ids(doc2) == {"slsa-provenance-build-type", "slsa-provenance-builder"}
}

test_hostile_evidence_entries_are_ignored if {
	doc := with_attestations(gha, [7, "x", null, {"predicateType": 3}, gha_prov])
	count(results(doc)) == 0
}

# --- slsa-provenance-parameters ---------------------------------------------------

test_parameter_errors_deny if {
	doc := with_params(gha, {"builderIds": []})
	ids(doc) == {"slsa-provenance-parameters"}
	some v in results(doc)
	v.msg == "contract misconfigured: parameter builderIds must be a non-empty list of patterns (exact strings, or with * wildcards), got []"
}

test_unknown_parameter_denies if {
	doc := with_params(gha, {"builderId": ["https://github.com/acme/*"]})
	ids(doc) == {"slsa-provenance-parameters"}
}

test_missing_parameters_deny if {
	doc := object.union(gha, {"contract": {"parameters": null}})
	ids(doc) == {"slsa-provenance-parameters"}
}

test_invalid_pattern_denies if {
	doc := with_params(gha, {"sourceRepositories": ["https://github.com/acme/{a,b}"]})
	ids(doc) == {"slsa-provenance-parameters"}
}

test_denial_survives_missing_descriptive_fields if {
	# A message part that is undefined would silently drop the denial.
	a := json.remove(object.union(gha_prov, {"signer": key_signer}), ["digest", "authority", "signer/keyName"])
	doc := with_attestations(gha, [a])
	ids(doc) == {"slsa-provenance-signer"}
	some v in results(doc)
	v.msg == "provenance (no digest) signed by an unknown signer is not signed with a keyless (Fulcio) certificate"
}
