# dockerfile-and-base-image: the provenance records the Dockerfile and the
# base image by digest.
#
# dockerfile-recorded: at least one SLSA provenance attestation (v1 or v0.2)
# for the image digest records the Dockerfile it was built from, as
#   - a resolved dependency (material) named like a Dockerfile, with a digest;
#   - BuildKit's config source (externalParameters.configSource, v0.2
#     invocation.configSource) whose path is a Dockerfile and whose digest
#     pins it (the Git commit of a Git build context); or
#   - BuildKit's config source path plus the Dockerfile's content in
#     buildkit_metadata.source.infos (provenance mode=max of a local build).
# Any one provenance attestation that records it is enough: provenance from
# `actions/attest-build-provenance` (which records no Dockerfile) next to
# BuildKit's does not hurt.
#
# base-image-pinned: at least one provenance attestation records a base
# image (an image dependency other than `ignoredImages`) with a sha256
# digest, and no provenance attestation records an image dependency without
# one: a base image pulled by tag alone is a violation whatever else is
# attested (violation wins).
package provgate.contract

import data.provgate.lib

# Rule values of the library are imported by path: `lib.<rule>` would make
# regorus compute the whole data.provgate.lib document, every rule of the
# library, on each evaluation (half the time of slsa-provenance over
# docs/examples/policy-input.json). Functions are called as lib.f(x).
import data.provgate.lib.params
import data.provgate.lib.provenance
import data.provgate.lib.slsa_provenance_v02
import data.provgate.lib.slsa_provenance_v1

parameter_kinds := {"ignoredImages": "strings"}

parameter_errors := lib.parameter_errors(parameter_kinds)

params_ok if count(parameter_errors) == 0

deny contains lib.violation(
	sprintf("contract misconfigured: %s", [msg]),
	"dockerfile-and-base-image-parameters",
	"the SecOps owner of the binding must fix the dockerfile-and-base-image parameters (see policies/README.md)",
) if {
	some msg in parameter_errors
}

# --- Dockerfiles ------------------------------------------------------------------

basename(p) := b if {
	parts := split(p, "/")
	b := parts[count(parts) - 1]
}

# is_dockerfile(p): the last path component of p is Dockerfile or
# Containerfile, or ends in .Dockerfile, or starts with Dockerfile. (any case).
is_dockerfile(p) if {
	lib.nonempty_string(p)
	n := lower(basename(p))
	some base in ["dockerfile", "containerfile"]
	_dockerfile_form(n, base)
}

_dockerfile_form(n, base) if n == base

_dockerfile_form(n, base) if endswith(n, concat("", [".", base]))

_dockerfile_form(n, base) if startswith(n, concat("", [base, "."]))

# pins(ds): a DigestSet that pins content: a sha256/sha384/sha512 digest, or
# a Git commit (sha1 or gitCommit, 40 or 64 hex).
_pin_lengths := {"sha256": {64}, "sha384": {96}, "sha512": {128}, "sha1": {40}, "gitCommit": {40, 64}}

pins(ds) if {
	is_object(ds)
	some alg, lengths in _pin_lengths
	some n in lengths
	lib.is_hex(ds[alg], n)
}

# The file names a non-image dependency is known by: its name and the last
# component of its uri's path.
dependency_paths(dep) := {p |
	p := dep.name
	is_string(p)
} | {p |
	not lib.image_reference(dep)
	is_string(dep.uri)
	p := split(split(dep.uri, "#")[0], "?")[0]
}

# dockerfile_recorded(a): how provenance `a` records the Dockerfile, if it does.
dockerfile_recorded(a) := ({"dependency" |
	some dep in lib.resolved_dependencies(a)
	some p in dependency_paths(dep)
	is_dockerfile(p)
	pins(dep.digest)
} | {"config-source" |
	cs := lib.config_source(a)
	is_dockerfile(cs.path)
	pins(cs.digest)
}) | {"inline-source" |
	cs := lib.config_source(a)
	is_dockerfile(cs.path)
	some info in lib.as_array(buildkit_source(a).infos)
	is_string(info.filename)
	basename(info.filename) == basename(cs.path)
	lib.nonempty_string(info.data)
	base64.is_valid(info.data)
}

# BuildKit's metadata.source (mode=max): v1 runDetails.metadata.buildkit_metadata,
# v0.2 metadata["https://mobyproject.org/buildkit@v1#metadata"].
buildkit_source(a) := s if {
	a.predicateType == slsa_provenance_v1
	s := a.statement.predicate.runDetails.metadata.buildkit_metadata.source
	is_object(s)
} else := s if {
	a.predicateType == slsa_provenance_v02
	s := a.statement.predicate.metadata["https://mobyproject.org/buildkit@v1#metadata"].source
	is_object(s)
} else := {}

records_dockerfile := {a | some a in provenance; count(dockerfile_recorded(a)) > 0}

# Provenance naming a Dockerfile path without pinning it (a local build context
# with provenance mode=min).
dockerfile_paths_unpinned := {cs.path |
	some a in provenance
	cs := lib.config_source(a)
	is_dockerfile(cs.path)
}

provenance_fix := "build with BuildKit and attest its provenance: `docker/build-push-action` with `provenance: mode=max`, then sign BuildKit's SLSA provenance for the pushed digest (extract it with `docker buildx imagetools inspect IMAGE@DIGEST --format '{{ json .Provenance.SLSA }}'` and attest it with `cosign attest --type slsaprovenance1` or `actions/attest` with predicate-type https://slsa.dev/provenance/v1)"

deny contains lib.violation(
	"no SLSA provenance attestation for this image digest records the Dockerfile (there is no provenance from a trusted signer)",
	"dockerfile-recorded",
	provenance_fix,
) if {
	count(provenance) == 0
}

deny contains lib.violation(
	sprintf("provenance records the Dockerfile path %s but not its digest or content (a local build context)", [concat(", ", sort(dockerfile_paths_unpinned))]),
	"dockerfile-recorded",
	"build from a Git context (`context: https://github.com/OWNER/REPO.git#COMMIT` in `docker/build-push-action`), so the provenance records the commit that pins the Dockerfile, or generate provenance with `provenance: mode=max`, which records the Dockerfile itself",
) if {
	params_ok
	count(records_dockerfile) == 0
	count(dockerfile_paths_unpinned) > 0
}

deny contains lib.violation(
	"none of the SLSA provenance attestations for this image digest records the Dockerfile (name and digest)",
	"dockerfile-recorded",
	provenance_fix,
) if {
	params_ok
	count(provenance) > 0
	count(records_dockerfile) == 0
	count(dockerfile_paths_unpinned) == 0
}

# --- Base images ------------------------------------------------------------------

# base_images(a): the image dependencies of provenance `a` that are not
# ignored, as {"ref": "docker.io/library/alpine:3.20", "digest": "sha256:..." or ""}.
base_images(a) := {img |
	some dep in lib.resolved_dependencies(a)
	ref := lib.image_reference(dep)
	not lib.matches_any(ref.repository, params.ignoredImages)
	img := {"ref": _ref_text(ref), "digest": _digest_or_empty(dep)}
}

_ref_text(ref) := ref.repository if {
	ref.version == ""
} else := concat("@", [ref.repository, ref.version]) if {
	startswith(ref.version, "sha256:")
} else := concat(":", [ref.repository, ref.version])

_digest_or_empty(dep) := lib.image_dependency_digest(dep) if {
	lib.image_dependency_digest(dep)
} else := ""

pinned_base_images := {img |
	some a in provenance
	some img in base_images(a)
	img.digest != ""
}

unpinned_base_images := {[a, img] |
	some a in provenance
	some img in base_images(a)
	img.digest == ""
}

deny contains lib.violation(
	"no SLSA provenance attestation for this image digest records the base image (there is no provenance from a trusted signer)",
	"base-image-pinned",
	provenance_fix,
) if {
	count(provenance) == 0
}

deny contains lib.violation(
	sprintf("provenance %s records image %s without a sha256 digest", [lib.describe(a), img.ref]),
	"base-image-pinned",
	"build with a builder that resolves and records the digest of every FROM image (BuildKit does), or pin the FROM lines as image@sha256:…",
) if {
	params_ok
	some pair in unpinned_base_images
	a := pair[0]
	img := pair[1]
}

deny contains lib.violation(
	"none of the SLSA provenance attestations for this image digest records a base image by digest",
	"base-image-pinned",
	concat(" ", [provenance_fix, "(an image built FROM scratch has no base image: ask SecOps for an exemption)"]),
) if {
	params_ok
	count(provenance) > 0
	count(pinned_base_images) == 0
	count(unpinned_base_images) == 0
}
