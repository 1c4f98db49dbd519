# sbom-required: an SBOM is attested for this image digest.
#
# An SBOM attestation counts when
# - its predicate type is CycloneDX (https://cyclonedx.org/bom, .../bom/v1.<n>)
#   or SPDX 2 (https://spdx.dev/Document, .../Document/v2.<n>), of a format the
#   `formats` parameter accepts;
# - it is bound to this image: its subject is the image digest or one of the
#   image index's platform digests, and the signed statement names it (an SBOM
#   of another build never satisfies this contract);
# - its predicate is the document itself: a CycloneDX BOM (bomFormat
#   "CycloneDX") or an SPDX 2 document (spdxVersion "SPDX-2.<n>").
# One such attestation is enough (any SBOM satisfies; extra ones do not hurt).
package provgate.contract

import data.provgate.lib

# Rule values of the library are imported by path: `lib.<rule>` would make
# regorus compute the whole data.provgate.lib document, every rule of the
# library, on each evaluation (half the time of slsa-provenance over
# docs/examples/policy-input.json). Functions are called as lib.f(x).
import data.provgate.lib.image_attestations
import data.provgate.lib.params

parameter_kinds := {"formats": "strings"}

known_formats := {"cyclonedx", "spdx"}

parameter_errors := lib.parameter_errors(parameter_kinds) | {msg |
	some f in lib.as_array(params.formats)
	not f in known_formats
	msg := sprintf("parameter formats: unknown format %v (known: cyclonedx, spdx)", [f])
} | {msg |
	params.formats == []
	msg := "parameter formats must name at least one format"
}

params_ok if count(parameter_errors) == 0

formats := {f | some f in lib.as_array(params.formats)}

deny contains lib.violation(
	sprintf("contract misconfigured: %s", [msg]),
	"sbom-required-parameters",
	"the SecOps owner of the binding must fix the sbom-required parameters (see policies/README.md)",
) if {
	some msg in parameter_errors
}

# format_of(t): the SBOM format a predicate type denotes.
format_of(t) := "cyclonedx" if {
	_versioned(t, "https://cyclonedx.org/bom", "1")
} else := "spdx" if {
	_versioned(t, "https://spdx.dev/Document", "2")
}

# _versioned(t, base, major): t is base, or base + "/v<major>.<minor>".
_versioned(t, base, _) if t == base

_versioned(t, base, major) if {
	is_string(t)
	startswith(t, concat("", [base, "/v", major, "."]))
	lib.is_digits(substring(t, count(base) + count(major) + 3, -1))
}

# The predicate is an SBOM document of the declared format.
is_document("cyclonedx", pred) if pred.bomFormat == "CycloneDX"

is_document("spdx", pred) if {
	v := pred.spdxVersion
	is_string(v)
	startswith(v, "SPDX-2.")
}

sbom_attestations := {a |
	some a in image_attestations
	format_of(a.predicateType) in formats
}

valid_sboms := {a |
	some a in sbom_attestations
	is_document(format_of(a.predicateType), a.statement.predicate)
}

fix := "generate an SBOM of the pushed image in CI and attest it to the digest, e.g. `syft scan IMAGE@DIGEST -o cyclonedx-json > sbom.json` then `actions/attest-sbom` (subject-name: the image, subject-digest: the digest, sbom-path: sbom.json, push-to-registry: true) or `cosign attest --type cyclonedx --predicate sbom.json IMAGE@DIGEST`"

format_names := concat(" or ", sort([n | some f in formats; n := {"cyclonedx": "CycloneDX", "spdx": "SPDX"}[f]]))

deny contains lib.violation(
	sprintf("no %s SBOM attestation for this image digest from a trusted signer", [format_names]),
	"sbom-present",
	fix,
) if {
	params_ok
	count(sbom_attestations) == 0
}

deny contains lib.violation(
	sprintf("SBOM attestation %s is not a %s document (its predicate must be the SBOM itself)", [lib.describe(a), format_of(a.predicateType)]),
	"sbom-present",
	fix,
) if {
	params_ok
	count(valid_sboms) == 0
	some a in sbom_attestations
}
