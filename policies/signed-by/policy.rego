# signed-by: some trusted signer vouched for this image digest.
#
# provgate drops every signature and attestation whose signer is outside this
# contract's authorities before the policy runs, so any verified signature
# (cosign simple signing or a bundle message signature) or attestation of any
# predicate type that is bound to this digest (or one of its platform
# digests) satisfies the contract.
package provgate.contract

import data.provgate.lib

# Rule values of the library are imported by path: `lib.<rule>` would make
# regorus compute the whole data.provgate.lib document, every rule of the
# library, on each evaluation (half the time of slsa-provenance over
# docs/examples/policy-input.json). Functions are called as lib.f(x).
import data.provgate.lib.image_evidence

parameter_errors := lib.parameter_errors({})

deny contains lib.violation(
	sprintf("contract misconfigured: %s", [msg]),
	"signed-by-parameters",
	"the SecOps owner of the binding must remove the signed-by parameters, it takes none (see policies/README.md)",
) if {
	some msg in parameter_errors
}

deny contains lib.violation(
	"no verified signature or attestation for this image digest from a trusted signer",
	"signed-by-trusted-signer",
	"sign the pushed digest from the CI identity the binding trusts (`cosign sign --yes IMAGE@DIGEST` in the release workflow, or attach any attestation from it, e.g. `actions/attest-build-provenance`); `provgate check IMAGE --explain` lists signatures ignored because their signer is not trusted",
) if {
	count(image_evidence) == 0
}
