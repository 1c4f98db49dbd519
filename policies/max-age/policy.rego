# max-age: the image's newest verified evidence is recent.
#
# The age is measured from the verified signing time (time.value, when
# time.source is rfc3161 or rekor), never from statement content, to
# input.now. The newest piece of the selected evidence decides (a fresh
# signature next to old ones satisfies the contract). Evidence with no
# trusted time, or dated more than 5 minutes after input.now, counts as too
# old; so does the absence of evidence.
package provgate.contract

import data.provgate.lib

# Rule values of the library are imported by path: `lib.<rule>` would make
# regorus compute the whole data.provgate.lib document, every rule of the
# library, on each evaluation (half the time of slsa-provenance over
# docs/examples/policy-input.json). Functions are called as lib.f(x).
import data.provgate.lib.image_evidence
import data.provgate.lib.max_future_skew_ns
import data.provgate.lib.now_ns
import data.provgate.lib.params

parameter_kinds := {"warnDays": "days", "denyDays": "days", "predicateTypes": "strings"}

parameter_errors := lib.parameter_errors(parameter_kinds)

params_ok if count(parameter_errors) == 0

p := params

deny contains lib.violation(
	sprintf("contract misconfigured: %s", [msg]),
	"max-age-parameters",
	"the SecOps owner of the binding must fix the max-age parameters (see policies/README.md)",
) if {
	some msg in parameter_errors
}

selected := image_evidence if {
	p.predicateTypes == []
} else := lib.attestations_of(p.predicateTypes) if {
	params_ok
} else := set()

kinds_text := "verified signature or attestation" if {
	p.predicateTypes == []
} else := sprintf("verified attestation of type %s", [concat(" or ", p.predicateTypes)]) if {
	params_ok
}

times := {t |
	some ev in selected
	t := lib.evidence_time_ns(ev)
	t - now_ns <= max_future_skew_ns
}

newest := max(times)

age := lib.age_days(newest)

resign_fix := "rebuild, or re-sign the digest, from CI with a signer that records the signing in the Rekor transparency log (`cosign sign`, `actions/attest-build-provenance`); images must be rebuilt regularly to pick up fixes"

deny contains lib.violation(
	"the policy input has no valid `now`, so no evidence can be judged recent",
	"evidence-max-age",
	"report this to the provgate operators: provgate always sets input.now",
) if {
	not now_ns
}

deny contains lib.violation(
	sprintf("no %s for this image digest from a trusted signer", [kinds_text]),
	"evidence-max-age",
	resign_fix,
) if {
	params_ok
	count(selected) == 0
}

deny contains lib.violation(
	sprintf("none of the %d pieces of evidence for this image digest has a trusted time (an RFC 3161 timestamp or a Rekor entry, not in the future)", [count(selected)]),
	"evidence-max-age",
	resign_fix,
) if {
	params_ok
	now_ns
	count(selected) > 0
	count(times) == 0
}

deny contains lib.violation(
	sprintf("the newest evidence for this image digest was signed %s days ago, more than denyDays (%v)", [lib.format_days(age), p.denyDays]),
	"evidence-max-age",
	resign_fix,
) if {
	params_ok
	age > p.denyDays
}

warn contains lib.violation(
	sprintf("the newest evidence for this image digest was signed %s days ago, more than warnDays (%v); it will be denied after %v days", [lib.format_days(age), p.warnDays, p.denyDays]),
	"evidence-max-age-warning",
	resign_fix,
) if {
	params_ok
	age > p.warnDays
	age <= p.denyDays
}
