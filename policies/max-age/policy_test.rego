# Tests of max-age (inputs bound locally before `with input as`, see
# lib/provgate_test.rego).
package provgate.max_age_test

import data.provgate.contract

denies(doc) := r if {
	r := contract.deny with input as doc
}

warns(doc) := r if {
	r := contract.warn with input as doc
}

ids(doc) := {v.requirement | some v in denies(doc)}

warn_ids(doc) := {v.requirement | some v in warns(doc)}

with_params(doc, ps) := object.union(doc, {"contract": {"parameters": ps}})

fresh := data.testdata.fresh

aging := data.testdata.aging

stale := data.testdata.stale

# --- evidence-max-age (deny) and evidence-max-age-warning (warn) -------------------

test_fresh_evidence_passes if {
	doc := fresh
	count(denies(doc)) == 0
	count(warns(doc)) == 0
}

test_aging_evidence_warns if {
	doc := aging
	count(denies(doc)) == 0
	warn_ids(doc) == {"evidence-max-age-warning"}
	some v in warns(doc)
	v.msg == "the newest evidence for this image digest was signed 43 days ago, more than warnDays (30); it will be denied after 90 days"
}

test_stale_evidence_denies if {
	doc := stale
	ids(doc) == {"evidence-max-age"}
	count(warns(doc)) == 0
	some v in denies(doc)
	v.msg == "the newest evidence for this image digest was signed 118 days ago, more than denyDays (90)"
}

test_newest_evidence_decides if {
	# An old signature next to a fresh one: the fresh one wins.
	doc := object.union(fresh, {"signatures": array.concat(fresh.signatures, stale.signatures)})
	count(denies(doc)) == 0
	count(warns(doc)) == 0
}

test_boundaries if {
	doc := with_params(aging, {"denyDays": 43})
	ids(doc) == {"evidence-max-age"}
	doc2 := with_params(aging, {"warnDays": 44})
	count(warns(doc2)) == 0
	count(denies(doc2)) == 0
}

test_no_trusted_time_counts_as_too_old if {
	doc := data.testdata.no_trusted_time
	ids(doc) == {"evidence-max-age"}
	some v in denies(doc)
	v.msg == "none of the 1 pieces of evidence for this image digest has a trusted time (an RFC 3161 timestamp or a Rekor entry, not in the future)"
}

test_statement_time_is_not_trusted_time if {
	# A time source other than rfc3161/rekor never counts, whatever its value.
	s := object.union(stale.signatures[0], {"time": {"source": "statement", "value": "2026-11-24T00:00:00Z"}})
	doc := object.union(stale, {"signatures": [s]})
	ids(doc) == {"evidence-max-age"}
}

test_future_dated_evidence_is_ignored if {
	s := object.union(stale.signatures[0], {"time": {"value": "2027-01-01T00:00:00Z"}})
	doc := object.union(stale, {"signatures": [s]})
	ids(doc) == {"evidence-max-age"}
}

test_no_evidence_denies if {
	doc := object.union(fresh, {"attestations": [], "signatures": []})
	ids(doc) == {"evidence-max-age"}
	doc2 := {"now": "2026-11-25T10:00:00Z", "contract": fresh.contract}
	ids(doc2) == {"evidence-max-age"}
}

test_evidence_for_another_digest_does_not_count if {
	other := "sha256:0b7f3c9a1d2e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f90"
	doc := object.union(fresh, {"image": {"digest": other, "index": null}})
	ids(doc) == {"evidence-max-age"}
}

test_invalid_now_denies if {
	doc := object.union(fresh, {"now": 1795600800})
	ids(doc) == {"evidence-max-age"}
	some v in denies(doc)
	contains(v.msg, "no valid `now`")
}

test_predicate_types_select_evidence if {
	# Age of the build (provenance), not of the last signature.
	prov_only := {"predicateTypes": ["https://slsa.dev/provenance/v1"]}
	doc := with_params(object.union(aging, {"signatures": fresh.signatures}), prov_only)
	warn_ids(doc) == {"evidence-max-age-warning"}
	doc2 := with_params(object.union(fresh, {"attestations": []}), prov_only)
	some v in denies(doc2)
	v.msg == "no verified attestation of type https://slsa.dev/provenance/v1 for this image digest from a trusted signer"
}

test_unknown_predicate_type_selects_nothing if {
	doc := with_params(fresh, {"predicateTypes": ["https://example.com/unknown/v1"]})
	ids(doc) == {"evidence-max-age"}
}

test_hostile_times if {
	s := object.union(fresh.signatures[0], {"time": {"source": "rekor", "value": 1795514400}})
	t := object.union(fresh.signatures[0], {"time": "yesterday"})
	doc := object.union(fresh, {"attestations": [], "signatures": [s, t, 7]})
	ids(doc) == {"evidence-max-age"}
}

# --- max-age-parameters ---------------------------------------------------------------

test_parameter_errors_deny if {
	every ps in [{"warnDays": "30"}, {"denyDays": -1}, {"predicateTypes": "https://slsa.dev/provenance/v1"}, {"maxDays": 3}] {
		doc := with_params(fresh, ps)
		ids(doc) == {"max-age-parameters"}
		count(warns(doc)) == 0
	}
}
