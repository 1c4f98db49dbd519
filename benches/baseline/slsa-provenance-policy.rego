# slsa-provenance: the image digest has SLSA provenance from a trusted builder.
#
# Trust is structural: only provenance whose signer matches this contract's
# authorities reaches this policy. The policy judges content (build type,
# builder id, source repository) and re-checks, as defence in depth, that the
# signer is keyless and the entry is in the transparency log.
#
# Semantics with several provenance attestations for the digest: every one of
# them must comply, and each non-compliant one is reported (violation wins).
# Contradictory provenance from a trusted signer is a reason to stop, not to
# pick the attestation that passes.
package provgate.contract

import data.provgate.lib

parameter_kinds := {
	"builderIds": "patterns",
	"buildTypes": "patterns",
	"sourceRepositories": "patterns",
	"requireKeyless": "boolean",
	"requireTlog": "boolean",
}

parameter_errors := lib.parameter_errors(parameter_kinds)

params_ok if count(parameter_errors) == 0

p := lib.params

attest_fix := "attest the pushed digest in the build workflow with `actions/attest-build-provenance` (subject-name: the image, subject-digest: the digest that was pushed, push-to-registry: true) from a workflow the binding's authorities trust; `provgate check IMAGE --explain` lists provenance ignored because its signer is not trusted"

deny contains lib.violation(
	sprintf("contract misconfigured: %s", [msg]),
	"slsa-provenance-parameters",
	"the SecOps owner of the binding must fix the slsa-provenance parameters (see policies/README.md)",
) if {
	some msg in parameter_errors
}

# slsa-provenance-present -------------------------------------------------------

deny contains lib.violation(
	"no SLSA provenance attestation (https://slsa.dev/provenance/v1 or v0.2) for this image digest from a trusted builder identity",
	"slsa-provenance-present",
	attest_fix,
) if {
	count(lib.provenance) == 0
}

# slsa-provenance-signer --------------------------------------------------------

deny contains lib.violation(
	sprintf("provenance %s is not signed with a keyless (Fulcio) certificate", [lib.describe(a)]),
	"slsa-provenance-signer",
	"sign provenance keyless from CI (`actions/attest-build-provenance`, or `cosign attest` with the workflow's OIDC identity), not with a long-lived key",
) if {
	params_ok
	p.requireKeyless == true
	some a in lib.provenance
	not lib.is_keyless(a)
}

deny contains lib.violation(
	sprintf("provenance %s has no verified transparency-log entry", [lib.describe(a)]),
	"slsa-provenance-signer",
	"publish provenance to the Rekor transparency log (the default of `actions/attest-build-provenance` for public repositories and of `cosign attest`); do not pass --tlog-upload=false",
) if {
	params_ok
	p.requireTlog == true
	some a in lib.provenance
	not lib.has_tlog_entry(a)
}

# slsa-provenance-build-type ----------------------------------------------------

deny contains lib.violation(
	sprintf("provenance %s records no build type", [lib.describe(a)]),
	"slsa-provenance-build-type",
	attest_fix,
) if {
	params_ok
	some a in lib.provenance
	not lib.build_type(a)
}

deny contains lib.violation(
	sprintf("provenance %s has build type %s, which is not allowed (allowed: %s)", [lib.describe(a), t, concat(", ", p.buildTypes)]),
	"slsa-provenance-build-type",
	"build with an allowed builder (GitHub Actions with `actions/attest-build-provenance`, or BuildKit provenance), or ask SecOps to add this build type to the binding's slsa-provenance buildTypes",
) if {
	params_ok
	some a in lib.provenance
	t := lib.build_type(a)
	not lib.matches_any(t, p.buildTypes)
}

# slsa-provenance-builder -------------------------------------------------------

deny contains lib.violation(
	sprintf("provenance %s records no builder id", [lib.describe(a)]),
	"slsa-provenance-builder",
	"generate provenance with a builder that records its id (`actions/attest-build-provenance` does; for BuildKit set the `builder-id` attestation parameter, which `docker/build-push-action` sets to the run URL)",
) if {
	params_ok
	some a in lib.provenance
	not lib.builder_id(a)
}

deny contains lib.violation(
	sprintf("provenance %s has builder id %s, which is not allowed (allowed: %s)", [lib.describe(a), id, concat(", ", p.builderIds)]),
	"slsa-provenance-builder",
	"build and attest the image in an allowed workflow, or ask SecOps to add this builder to the binding's slsa-provenance builderIds",
) if {
	params_ok
	some a in lib.provenance
	id := lib.builder_id(a)
	not lib.matches_any(id, p.builderIds)
}

# slsa-provenance-source --------------------------------------------------------

deny contains lib.violation(
	sprintf("provenance %s records no source repository", [lib.describe(a)]),
	"slsa-provenance-source",
	"build from a Git repository with a builder that records it (`actions/attest-build-provenance` records externalParameters.workflow.repository; BuildKit records configSource.uri when it builds a Git context)",
) if {
	params_ok
	some a in lib.provenance
	count(lib.source_repositories(a)) == 0
}

deny contains lib.violation(
	sprintf("provenance %s names source repository %s, which is not allowed (allowed: %s)", [lib.describe(a), r, concat(", ", p.sourceRepositories)]),
	"slsa-provenance-source",
	"build the image from an allowed repository, or ask SecOps to add this repository to the binding's slsa-provenance sourceRepositories",
) if {
	params_ok
	some a in lib.provenance
	some r in lib.source_repositories(a)
	not lib.matches_any(r, p.sourceRepositories)
}
