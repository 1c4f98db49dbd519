# Tests of dockerfile-and-base-image (inputs bound locally before
# `with input as`, see lib/provgate_test.rego).
package provgate.dockerfile_and_base_image_test

import data.provgate.contract

results(doc) := r if {
	r := contract.deny with input as doc
}

ids(doc) := {v.requirement | some v in results(doc)}

msgs(doc) := {v.msg | some v in results(doc)}

with_attestations(doc, atts) := object.union(doc, {"attestations": atts})

with_params(doc, ps) := object.union(doc, {"contract": {"parameters": ps}})

git := data.testdata.buildkit_git_context

gha_prov := git.attestations[0]

bk := git.attestations[1]

local := data.testdata.buildkit_local_context

bk_local := local.attestations[0]

v02 := data.testdata.buildkit_v02

bk_v02 := v02.attestations[0]

# A copy of provenance `a` whose v1 resolvedDependencies are `deps`.
with_deps(a, deps) := object.union(a, {"statement": {"predicate": {"buildDefinition": {"resolvedDependencies": deps}}}})

golang_by_tag := {"uri": "pkg:docker/golang@1.23-alpine?platform=linux%2Famd64", "digest": {}}

distroless := bk.statement.predicate.buildDefinition.resolvedDependencies[2]

frontend := bk.statement.predicate.buildDefinition.resolvedDependencies[0]

# --- passing ----------------------------------------------------------------------

test_buildkit_git_context_passes if {
	# Provenance from actions/attest-build-provenance (no Dockerfile) next to
	# BuildKit's (Dockerfile pinned by the Git commit): any one records it.
	doc := git
	count(results(doc)) == 0
}

test_buildkit_local_context_mode_max_passes if {
	# configSource has only the path; the Dockerfile content is in source.infos.
	doc := local
	not bk_local.statement.predicate.buildDefinition.externalParameters.configSource.digest
	count(results(doc)) == 0
}

test_buildkit_v02_passes if {
	doc := v02
	count(results(doc)) == 0
}

test_dockerfile_as_resolved_dependency_passes if {
	dockerfile := {"uri": "https://github.com/acme/payments-api/blob/4f0c2d1/build/api.Dockerfile", "digest": {"sha256": "3c6e0b8a9c15224a8228b9a98ca1531d2f0e1e8b8f4c1f0d3a6b7c8d9e0f1a2b"}}
	a := json.remove(with_deps(bk, [frontend, distroless, dockerfile]), ["statement/predicate/buildDefinition/externalParameters/configSource"])
	doc := with_attestations(git, [a])
	count(results(doc)) == 0
	named := {"name": "Containerfile", "uri": "file:///workspace/source/Containerfile", "digest": {"sha512": concat("", ["ab", substring(crypto.sha256("x"), 0, 62), crypto.sha256("y")])}}
	b := json.remove(with_deps(bk, [distroless, named]), ["statement/predicate/buildDefinition/externalParameters/configSource"])
	doc2 := with_attestations(git, [b])
	count(results(doc2)) == 0
}

# --- dockerfile-recorded ------------------------------------------------------------

test_github_provenance_alone_denies_both if {
	doc := data.testdata.github_only
	ids(doc) == {"dockerfile-recorded", "base-image-pinned"}
	some v in results(doc)
	v.requirement == "dockerfile-recorded"
	v.msg == "none of the SLSA provenance attestations for this image digest records the Dockerfile (name and digest)"
	contains(v.fix, "provenance: mode=max")
}

test_no_provenance_denies_both if {
	doc := with_attestations(git, [])
	ids(doc) == {"dockerfile-recorded", "base-image-pinned"}
	doc2 := {}
	ids(doc2) == {"dockerfile-recorded", "base-image-pinned", "dockerfile-and-base-image-parameters"}
}

test_local_context_without_content_denies if {
	a := json.remove(bk_local, ["statement/predicate/runDetails/metadata/buildkit_metadata/source"])
	doc := with_attestations(local, [a])
	ids(doc) == {"dockerfile-recorded"}
	msgs(doc) == {"provenance records the Dockerfile path Dockerfile but not its digest or content (a local build context)"}
}

test_inline_source_of_another_file_does_not_count if {
	a := object.union(bk_local, {"statement": {"predicate": {"runDetails": {"metadata": {"buildkit_metadata": {"source": {"infos": [{"filename": "other.Dockerfile", "data": "RlJPTSBzY3JhdGNoCg=="}]}}}}}}})
	doc := with_attestations(local, [a])
	ids(doc) == {"dockerfile-recorded"}
}

test_inline_source_must_be_base64 if {
	a := object.union(bk_local, {"statement": {"predicate": {"runDetails": {"metadata": {"buildkit_metadata": {"source": {"infos": [{"filename": "Dockerfile", "data": "not base64!"}]}}}}}}})
	doc := with_attestations(local, [a])
	ids(doc) == {"dockerfile-recorded"}
}

test_config_source_without_pinning_digest_denies if {
	weak := object.union(bk, {"statement": {"predicate": {"buildDefinition": {"externalParameters": {"configSource": {"digest": {"sha1": "abc", "md5": "d41d8cd98f00b204e9800998ecf8427e"}}}}}}})
	doc := with_attestations(git, [gha_prov, weak])
	ids(doc) == {"dockerfile-recorded"}
}

test_config_source_that_is_not_a_dockerfile_denies if {
	a := object.union(bk, {"statement": {"predicate": {"buildDefinition": {"externalParameters": {"configSource": {"path": "build.hcl"}}}}}})
	doc := with_attestations(git, [a])
	ids(doc) == {"dockerfile-recorded"}
}

test_dockerfile_dependency_without_digest_denies if {
	dockerfile := {"uri": "https://github.com/acme/payments-api/blob/main/Dockerfile"}
	a := json.remove(with_deps(bk, [distroless, dockerfile]), ["statement/predicate/buildDefinition/externalParameters/configSource"])
	doc := with_attestations(git, [a])
	ids(doc) == {"dockerfile-recorded"}
}

test_frontend_image_is_not_a_dockerfile if {
	# pkg:docker/docker/dockerfile@1.12 is the Dockerfile frontend image.
	a := json.remove(with_deps(bk, [frontend, distroless]), ["statement/predicate/buildDefinition/externalParameters/configSource"])
	doc := with_attestations(git, [a])
	ids(doc) == {"dockerfile-recorded"}
}

test_unknown_predicate_type_is_not_provenance if {
	a := object.union(bk, {"predicateType": "https://example.com/provenance/v1", "statement": {"predicateType": "https://example.com/provenance/v1"}})
	doc := with_attestations(git, [a])
	ids(doc) == {"dockerfile-recorded", "base-image-pinned"}
}

test_provenance_for_another_digest_does_not_count if {
	a := object.union(bk, {"subject": "sha256:0b7f3c9a1d2e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f90"})
	doc := with_attestations(git, [a])
	ids(doc) == {"dockerfile-recorded", "base-image-pinned"}
}

test_hostile_provenance_denies_without_error if {
	a := object.union(bk, {"statement": {"predicate": {"buildDefinition": {"externalParameters": {"configSource": {"path": ["Dockerfile"], "digest": "sha1"}}, "resolvedDependencies": [7, "x", {"uri": 3, "digest": []}]}, "runDetails": {"metadata": {"buildkit_metadata": {"source": {"infos": "x"}}}}}}})
	doc := with_attestations(git, [a])
	ids(doc) == {"dockerfile-recorded", "base-image-pinned"}
	b := object.union(bk, {"statement": {"predicate": {"buildDefinition": "x"}}})
	doc2 := with_attestations(git, [b])
	ids(doc2) == {"dockerfile-recorded", "base-image-pinned"}
}

# --- base-image-pinned ------------------------------------------------------------

test_base_image_by_tag_denies if {
	a := with_deps(bk, [frontend, golang_by_tag, distroless])
	doc := with_attestations(git, [a])
	ids(doc) == {"base-image-pinned"}
	some m in msgs(doc)
	endswith(m, "records image docker.io/library/golang:1.23-alpine without a sha256 digest")
}

test_unpinned_base_image_wins_over_pinned_provenance if {
	# One provenance pins every image, another records one by tag only.
	a := object.union(with_deps(bk_v02, [golang_by_tag]), {"digest": "sha256:5e1b0c4d2a3f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4a"})
	b := object.union(a, {"statement": {"predicate": {"materials": [golang_by_tag]}}})
	doc := with_attestations(git, [gha_prov, bk, b])
	ids(doc) == {"base-image-pinned"}
}

test_digest_in_uri_counts if {
	dep := {"uri": "oci://ghcr.io/acme/base-images/go@sha256:1f6e3a0c9d8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29"}
	a := with_deps(bk, [frontend, dep])
	doc := with_attestations(git, [a])
	count(results(doc)) == 0
}

test_conflicting_digests_deny if {
	dep := {"uri": "oci://ghcr.io/acme/base-images/go@sha256:1f6e3a0c9d8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29", "digest": {"sha256": "2f6e3a0c9d8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29"}}
	a := with_deps(bk, [frontend, dep])
	doc := with_attestations(git, [a])
	ids(doc) == {"base-image-pinned"}
}

test_only_frontend_image_denies if {
	# FROM scratch, or a builder that records no images: no base image.
	a := with_deps(bk, [frontend])
	doc := with_attestations(git, [a])
	ids(doc) == {"base-image-pinned"}
	some v in results(doc)
	contains(v.fix, "FROM scratch")
}

test_ignored_images_parameter if {
	a := with_deps(bk, [frontend, {"uri": "pkg:docker/docker/buildkit-syft-scanner@stable-1", "digest": {}}, distroless])
	doc := with_attestations(git, [a])
	count(results(doc)) == 0
	doc2 := with_params(doc, {"ignoredImages": []})
	ids(doc2) == {"base-image-pinned"}
}

# --- parameters ---------------------------------------------------------------------

test_parameter_errors_deny if {
	doc := with_params(git, {"ignoredImages": "docker.io/docker/dockerfile"})
	ids(doc) == {"dockerfile-and-base-image-parameters"}
	doc2 := with_params(git, {"ignoreImages": []})
	ids(doc2) == {"dockerfile-and-base-image-parameters"}
}
