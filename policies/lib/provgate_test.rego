# Tests of the shared library (data.provgate.lib). The library's tests get no
# testdata, so the documents they use are built here.
#
# Each input is bound to a local variable before `with input as doc`:
# regorus 0.14.1 evaluates a rule to undefined inside an expression whose
# `with` value references that same rule (directly or through another rule).
package provgate.lib_test

import data.provgate.lib

hex_a := "4d9ef3b8c47e10ba1cbc3e5a8f5c96d8e3fa2b7a1c9e0d5f6a7b8c9d0e1f2a3b"

hex_b := "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"

hex_amd64 := "7c5b3a2918f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5"

digest_a := concat("", ["sha256:", hex_a])

digest_b := concat("", ["sha256:", hex_b])

digest_amd64 := concat("", ["sha256:", hex_amd64])

# The linux/amd64 platform of the index digest_a, as provgate judges it.
image := {
	"ref": "ghcr.io/acme/app:1.0",
	"registry": "ghcr.io",
	"repository": "acme/app",
	"tag": "1.0",
	"digest": digest_amd64,
	"platform": "linux/amd64",
	"index": digest_a,
}

signer := {
	"kind": "keyless",
	"issuer": "https://token.actions.githubusercontent.com",
	"subject": "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main",
	"extensions": {"sourceRepositoryURI": "https://github.com/acme/app", "githubWorkflowRepository": "acme/app"},
	"trustedRoot": "public-good",
}

tlog := [{
	"logIndex": 151234567,
	"logId": "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d",
	"kind": "dsse/0.0.1",
	"integratedTime": "2026-11-24T09:12:31Z",
	"inclusionProof": true,
	"inclusionPromise": true,
}]

# att(pt, subject, statement_hex, predicate): an attestation as provgate reports it.
att(pt, subject, statement_hex, predicate) := {
	"predicateType": pt,
	"statement": {
		"_type": "https://in-toto.io/Statement/v1",
		"subject": [{"name": "ghcr.io/acme/app", "digest": {"sha256": statement_hex}}],
		"predicateType": pt,
		"predicate": predicate,
	},
	"subject": subject,
	"digest": "sha256:9a3f5c0e6b1d2a4c8e7f9b0d1c2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e",
	"authority": "github-actions",
	"signer": signer,
	"time": {"source": "rekor", "value": "2026-11-24T09:12:31Z"},
	"tlog": tlog,
	"source": {"kind": "referrers"},
}

sig(subject, payload) := {
	"subject": subject,
	"digest": "sha256:1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c",
	"authority": "github-actions",
	"signer": signer,
	"time": {"source": "rekor", "value": "2026-11-24T09:12:31Z"},
	"tlog": tlog,
	"source": {"kind": "cosign-sig"},
	"payload": payload,
}

input_with(atts, sigs) := {
	"apiVersion": "provgate.dev/policy-input/v1",
	"now": "2026-11-25T10:00:00Z",
	"image": image,
	"attestations": atts,
	"signatures": sigs,
	"context": {"source": "gate", "labels": {}},
	"contract": {"name": "t", "version": "1", "parameters": {}},
}

sbom_type := "https://cyclonedx.org/bom"

# --- numbers and digests ----------------------------------------------------

test_digits_value if {
	lib.digits_value("007") == 7
	lib.digits_value("000") == 0
	lib.digits_value("2026") == 2026
	not lib.digits_value("7a")
	not lib.digits_value("")
	not lib.digits_value(7)
	not lib.digits_value("1234567890123456")
	lib.digits_value("000123456789012345") == 123456789012345
}

test_decimal_value if {
	lib.decimal_value("9.8") == 9.8
	lib.decimal_value("07.5") == 7.5
	lib.decimal_value("10") == 10
	not lib.decimal_value("9.8.1")
	not lib.decimal_value("-1")
	not lib.decimal_value(".5")
	not lib.decimal_value(null)
	not lib.decimal_value("99999999999999999999.5")
	not lib.decimal_value("9.99999999999999999999")
	lib.normalize_severity("99999999999999999999999999.5") == "UNKNOWN"
}

test_is_digest if {
	lib.is_digest(digest_a)
	not lib.is_digest(upper(digest_a))
	not lib.is_digest(concat("", ["sha256:", substring(hex_a, 0, 63)]))
	not lib.is_digest(concat("", ["md5:", hex_a]))
	not lib.is_digest(concat("", ["sha256:", hex_a, ":x"]))
	not lib.is_digest({"sha256": hex_a})
}

test_short_digest if {
	lib.short_digest(digest_a) == "sha256:4d9ef3b8c47e"
	lib.short_digest(42) == "(no digest)"
}

test_image_digests_are_the_platform_and_its_index if {
	doc := input_with([], [])
	lib.image_digests == {digest_a, digest_amd64} with input as doc
}

test_image_digests_ignore_malformed if {
	doc := object.union(input_with([], []), {"image": {"index": 7}})
	lib.image_digests == {digest_amd64} with input as doc
	doc2 := object.union(input_with([], []), {"image": {"index": "latest"}})
	lib.image_digests == {digest_amd64} with input as doc2
}

test_image_digests_of_a_single_image if {
	doc := object.union(input_with([], []), {"image": {"digest": digest_a, "index": null, "platform": null}})
	lib.image_digests == {digest_a} with input as doc
}

# --- selecting evidence -------------------------------------------------------

test_attestation_for_image if {
	a := att(sbom_type, digest_a, hex_a, {"bomFormat": "CycloneDX"})
	doc := input_with([a], [])
	lib.image_attestations == {a} with input as doc
}

test_attestation_for_platform if {
	a := att(sbom_type, digest_amd64, hex_amd64, {})
	doc := input_with([a], [])
	lib.image_attestations == {a} with input as doc
}

test_attestation_for_another_platform_of_the_index_is_ignored if {
	# digest_b stands for the linux/arm64 manifest of the same index: its
	# provenance says nothing about the amd64 image that is judged.
	a := att(sbom_type, digest_b, hex_b, {})
	doc := input_with([a], [])
	count(lib.image_attestations) == 0 with input as doc
}

test_attestation_for_other_digest_is_ignored if {
	a := att(sbom_type, digest_b, hex_b, {})
	doc := input_with([a], [])
	count(lib.image_attestations) == 0 with input as doc
}

test_statement_naming_other_digest_is_ignored if {
	# provgate reported the image digest, but the signed statement names another.
	a := att(sbom_type, digest_a, hex_b, {})
	doc := input_with([a], [])
	count(lib.image_attestations) == 0 with input as doc
}

test_predicate_type_mismatch_is_ignored if {
	a := object.union(att(sbom_type, digest_a, hex_a, {}), {"predicateType": "https://spdx.dev/Document"})
	doc := input_with([a], [])
	count(lib.image_attestations) == 0 with input as doc
}

test_attestations_of_filters_types if {
	a := att(sbom_type, digest_a, hex_a, {})
	b := att("https://example.com/unknown/v1", digest_a, hex_a, {})
	doc := input_with([a, b], [])
	lib.attestations_of({sbom_type}) == {a} with input as doc
}

test_hostile_evidence_lists if {
	doc1 := input_with("x", 7)
	count(lib.image_evidence) == 0 with input as doc1
	doc2 := input_with([null, "x", 3, {"subject": 7}], [[], {"statement": 1}])
	count(lib.image_evidence) == 0 with input as doc2
	doc3 := {}
	count(lib.image_evidence) == 0 with input as doc3
}

test_cosign_signature_for_image if {
	s := sig(digest_a, {"critical": {"image": {"docker-manifest-digest": digest_a}, "type": "cosign container image signature"}})
	doc := input_with([], [s])
	lib.image_signatures == {s} with input as doc
}

test_bundle_message_signature_for_image if {
	s := sig(digest_a, null)
	doc := input_with([], [s])
	lib.image_signatures == {s} with input as doc
}

test_cosign_signature_payload_for_other_digest if {
	s := sig(digest_a, {"critical": {"image": {"docker-manifest-digest": digest_b}}})
	doc := input_with([], [s])
	count(lib.image_signatures) == 0 with input as doc
}

# --- signers ------------------------------------------------------------------

test_signer_facts if {
	a := att(sbom_type, digest_a, hex_a, {})
	lib.is_keyless(a)
	lib.has_tlog_entry(a)
	lib.signer_claim(a, "sourceRepositoryURI") == "https://github.com/acme/app"
	not lib.signer_claim(a, "buildTrigger")
	lib.describe(a) == "sha256:9a3f5c0e6b1d signed by https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
}

test_key_signer if {
	a := object.union(att(sbom_type, digest_a, hex_a, {}), {"signer": {"kind": "key", "keyId": "ab12", "keyName": "release"}, "tlog": []})
	not lib.is_keyless(a)
	not lib.has_tlog_entry(a)
	not lib.signer_claim(a, "sourceRepositoryURI")
	lib.signer_description(a) == "key release"
}

test_tlog_without_verified_inclusion if {
	not lib.has_tlog_entry({"tlog": [{"inclusionProof": false, "inclusionPromise": false}]})
	not lib.has_tlog_entry({"tlog": [{"inclusionProof": "true"}]})
	not lib.has_tlog_entry({"tlog": "yes"})
}

# --- time ---------------------------------------------------------------------

test_time_ns_valid if {
	lib.time_ns("2026-11-25T10:00:00Z") == 1795600800000000000
	lib.time_ns("2026-11-25T11:00:00+01:00") == 1795600800000000000
	lib.time_ns("2026-11-25t10:00:00.5z") == 1795600800500000000
	lib.time_ns("2028-02-29T00:00:00Z")
	lib.time_ns("2000-02-29T00:00:00Z")
}

test_time_ns_invalid if {
	not lib.time_ns("2026-02-29T00:00:00Z")
	not lib.time_ns("1900-02-29T00:00:00Z")
	not lib.time_ns("2026-04-31T00:00:00Z")
	not lib.time_ns("2026-11-25T24:00:00Z")
	not lib.time_ns("2026-11-25T10:60:00Z")
	not lib.time_ns("2026-11-25 10:00:00Z")
	not lib.time_ns("2026-11-25T10:00:00")
	not lib.time_ns("2026-11-25T10:00:00+2400")
	not lib.time_ns("2026-11-25T10:00:00.Z")
	not lib.time_ns("2026-11-25T10:00:00.1234567890Z")
	not lib.time_ns("9999-11-25T10:00:00Z")
	not lib.time_ns("1000-11-25T10:00:00Z")
	not lib.time_ns("2026-1-25T10:00:00Z")
	not lib.time_ns("yesterday")
	not lib.time_ns(1795600800)
	not lib.time_ns(null)
}

test_evidence_time if {
	a := att(sbom_type, digest_a, hex_a, {})
	lib.evidence_time_ns(a) == lib.time_ns("2026-11-24T09:12:31Z")
	not lib.evidence_time_ns(object.union(a, {"time": {"source": "none"}}))
	not lib.evidence_time_ns(object.union(a, {"time": {"source": "statement"}}))
	not lib.evidence_time_ns(object.union(a, {"time": {"source": "rekor", "value": "soon"}}))
}

test_age_days if {
	lib.age_days(lib.time_ns("2026-11-15T10:00:00Z")) == 10 with input.now as "2026-11-25T10:00:00Z"
	lib.format_days(lib.age_days(lib.time_ns("2026-11-15T22:00:00Z"))) == "9" with input.now as "2026-11-25T10:00:00Z"
	not lib.age_days(0) with input.now as "now"
}

# --- parameters -----------------------------------------------------------------

kinds := {"ids": "patterns", "names": "strings", "maxAgeDays": "days", "strict": "boolean", "level": "string"}

good_params := {"ids": ["https://github.com/acme/*"], "names": [], "maxAgeDays": 7, "strict": true, "level": "high"}

test_parameter_errors_none if {
	count(lib.parameter_errors(kinds)) == 0 with input.contract.parameters as good_params
}

test_parameter_errors_missing if {
	lib.parameter_errors(kinds) == {"parameter ids is not set"} with input.contract.parameters as object.remove(good_params, ["ids"])
}

test_parameter_errors_all_missing_when_parameters_absent if {
	doc := {}
	count(lib.parameter_errors(kinds)) == 5 with input as doc
	count(lib.parameter_errors(kinds)) == 5 with input.contract.parameters as "x"
}

test_parameter_errors_wrong_kind if {
	errs := lib.parameter_errors(kinds) with input.contract.parameters as {
		"ids": [], "names": [""], "maxAgeDays": "7", "strict": "yes", "level": 3,
	}
	count(errs) == 5
	"parameter maxAgeDays must be a number of days >= 0, got \"7\"" in errs
}

test_parameter_errors_bad_pattern if {
	errs := lib.parameter_errors(kinds) with input.contract.parameters as object.union(good_params, {"ids": ["https://github.com/**"]})
	count(errs) == 1
	errs2 := lib.parameter_errors(kinds) with input.contract.parameters as object.union(good_params, {"ids": ["https://github.com/{a,b}/*"]})
	count(errs2) == 1
}

test_parameter_errors_unknown if {
	errs := lib.parameter_errors(kinds) with input.contract.parameters as object.union(good_params, {"maxAgeDay": 3})
	errs == {"unknown parameter maxAgeDay (known: ids, level, maxAgeDays, names, strict)"}
	none := lib.parameter_errors({}) with input.contract.parameters as {"x": 1}
	none == {"unknown parameter x (this contract takes none)"}
}

# --- patterns -------------------------------------------------------------------

test_pattern_exact if {
	lib.pattern_matches("https://github.com/acme/app", "https://github.com/acme/app")
	lib.pattern_matches("https://github.com/acme/app", "https://github.com/ACME/app")
	not lib.pattern_matches("https://github.com/acme/app", "https://github.com/acme/app2")
}

test_pattern_wildcard if {
	lib.pattern_matches("https://github.com/acme/*", "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main")
	not lib.pattern_matches("https://github.com/acme/*", "https://github.com/acme-evil/app")
	not lib.pattern_matches("https://github.com/acme/*", "https://evil.example/https://github.com/acme/app")
	lib.pattern_matches("https://github.com/*/.github/workflows/*", "https://github.com/acme/app/.github/workflows/a.yml@refs/tags/v1")
}

test_pattern_invalid_or_hostile if {
	not lib.pattern_matches("https://github.com/[", "https://github.com/[")
	not lib.pattern_matches("https://github.com/**", "https://github.com/a")
	not lib.pattern_matches("", "")
	not lib.pattern_matches(7, 7)
	not lib.pattern_matches("*", 7)
	not lib.matches_any("x", "x")
	lib.matches_any("b", ["a", "b"])
}

# --- provenance readers ---------------------------------------------------------

v1_predicate := {
	"buildDefinition": {
		"buildType": "https://actions.github.io/buildtypes/workflow/v1",
		"externalParameters": {"workflow": {"ref": "refs/heads/main", "repository": "https://github.com/acme/app", "path": ".github/workflows/release.yml"}},
		"resolvedDependencies": [{"uri": "git+https://github.com/acme/app@refs/heads/main", "digest": {"gitCommit": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"}}, "junk"],
	},
	"runDetails": {"builder": {"id": "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"}},
}

test_provenance_v1_readers if {
	a := att(lib.slsa_provenance_v1, digest_a, hex_a, v1_predicate)
	lib.builder_id(a) == "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
	lib.build_type(a) == "https://actions.github.io/buildtypes/workflow/v1"
	count(lib.resolved_dependencies(a)) == 1
	lib.source_repositories(a) == {"https://github.com/acme/app"}
	not lib.config_source(a)
}

test_provenance_v02_readers if {
	a := att(lib.slsa_provenance_v02, digest_a, hex_a, {
		"builder": {"id": "https://github.com/acme/app/actions/runs/1"},
		"buildType": "https://mobyproject.org/buildkit@v1",
		"invocation": {"configSource": {"uri": "https://github.com/acme/app.git#refs/heads/main", "digest": {"sha1": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"}, "entryPoint": "Dockerfile"}},
		"materials": [{"uri": "pkg:docker/alpine@3.20?platform=linux%2Famd64", "digest": {"sha256": hex_b}}],
	})
	lib.builder_id(a) == "https://github.com/acme/app/actions/runs/1"
	lib.build_type(a) == "https://mobyproject.org/buildkit@v1"
	lib.config_source(a) == {"uri": "https://github.com/acme/app.git#refs/heads/main", "digest": {"sha1": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"}, "path": "Dockerfile"}
	count(lib.resolved_dependencies(a)) == 1
	lib.source_repositories(a) == {"https://github.com/acme/app"}
}

test_provenance_readers_follow_declared_type if {
	# A v1 type with a v0.2 body has no builder id or build type.
	a := att(lib.slsa_provenance_v1, digest_a, hex_a, {"builder": {"id": "x"}, "buildType": "y"})
	not lib.builder_id(a)
	not lib.build_type(a)
	lib.resolved_dependencies(a) == []
}

test_provenance_readers_hostile if {
	a := att(lib.slsa_provenance_v1, digest_a, hex_a, {"buildDefinition": "x", "runDetails": {"builder": {"id": 7}}})
	not lib.builder_id(a)
	not lib.build_type(a)
	lib.resolved_dependencies(a) == []
	lib.source_repositories(a) == {"https://github.com/acme/app"}
	b := att(lib.slsa_provenance_v1, digest_a, hex_a, "a string predicate")
	lib.resolved_dependencies(b) == []
}

test_normalize_repo_uri if {
	lib.normalize_repo_uri("git+https://github.com/acme/app@refs/heads/main") == "https://github.com/acme/app"
	lib.normalize_repo_uri("https://github.com/acme/app.git#refs/heads/main") == "https://github.com/acme/app"
	lib.normalize_repo_uri("git+ssh://git@github.com/acme/app.git") == "ssh://github.com/acme/app"
	lib.normalize_repo_uri("https://github.com/acme/app/") == "https://github.com/acme/app"
	lib.normalize_repo_uri("https://github.com/acme/app?x=1") == "https://github.com/acme/app"
}

test_image_reference if {
	lib.image_reference({"uri": "pkg:docker/alpine@3.20?platform=linux%2Famd64"}) == {"repository": "docker.io/library/alpine", "version": "3.20"}
	lib.image_reference({"uri": "pkg:docker/docker/dockerfile@1"}) == {"repository": "docker.io/docker/dockerfile", "version": "1"}
	lib.image_reference({"uri": "oci://ghcr.io/acme/base:1.2"}) == {"repository": "ghcr.io/acme/base", "version": "1.2"}
	lib.image_reference({"uri": "docker://localhost:5000/base"}) == {"repository": "localhost:5000/base", "version": ""}
	lib.image_reference({"uri": concat("", ["pkg:docker/ghcr.io/acme/base@sha256%3A", hex_b])}) == {"repository": "ghcr.io/acme/base", "version": digest_b}
	lib.image_reference({"uri": concat("", ["oci://ghcr.io/acme/base:1.2@", digest_b])}) == {"repository": "ghcr.io/acme/base", "version": digest_b}
	not lib.image_reference({"uri": "https://github.com/acme/app.git"})
	not lib.image_reference({"uri": 7})
	not lib.image_reference("pkg:docker/alpine")
}

test_image_dependency_digest if {
	lib.image_dependency_digest({"uri": "pkg:docker/alpine@3.20", "digest": {"sha256": hex_b}}) == digest_b
	lib.image_dependency_digest({"uri": concat("", ["oci://ghcr.io/acme/base@", digest_b])}) == digest_b
	lib.image_dependency_digest({"uri": concat("", ["oci://ghcr.io/acme/base@", digest_b]), "digest": {"sha256": hex_b}}) == digest_b
	not lib.image_dependency_digest({"uri": concat("", ["oci://ghcr.io/acme/base@", digest_b]), "digest": {"sha256": hex_a}})
	not lib.image_dependency_digest({"uri": "pkg:docker/alpine@3.20"})
	not lib.image_dependency_digest({"uri": "pkg:docker/alpine@3.20", "digest": {"sha256": "abc"}})
	not lib.image_dependency_digest({"uri": "pkg:docker/alpine@3.20", "digest": "sha256"})
}

# --- vulnerability scans --------------------------------------------------------

trivy_scan(vulns) := att(lib.cosign_vuln_type, digest_a, hex_a, {
	"scanner": {"uri": "pkg:github/aquasecurity/trivy@0.57.1", "version": "0.57.1", "result": {
		"SchemaVersion": 2,
		"Results": [{"Target": "ghcr.io/acme/app (alpine 3.20.3)", "Class": "os-pkgs", "Type": "alpine", "Vulnerabilities": vulns}],
	}},
	"metadata": {"scanStartedOn": "2026-11-24T09:10:00Z", "scanFinishedOn": "2026-11-24T09:11:00Z"},
})

test_normalize_severity if {
	lib.normalize_severity("CRITICAL") == "CRITICAL"
	lib.normalize_severity("Critical") == "CRITICAL"
	lib.normalize_severity(" moderate ") == "MEDIUM"
	lib.normalize_severity("9.8") == "CRITICAL"
	lib.normalize_severity("7.0") == "HIGH"
	lib.normalize_severity(5) == "MEDIUM"
	lib.normalize_severity("0.0") == "NEGLIGIBLE"
	lib.normalize_severity("11") == "UNKNOWN"
	lib.normalize_severity("CVSS:3.1/AV:N") == "UNKNOWN"
	lib.normalize_severity(null) == "UNKNOWN"
	lib.normalize_severity({"score": 9}) == "UNKNOWN"
}

test_trivy_findings if {
	a := trivy_scan([{"VulnerabilityID": "CVE-2024-45491", "PkgName": "expat", "PkgIdentifier": {"PURL": "pkg:apk/alpine/expat@2.6.2-r0?arch=x86_64&distro=3.20.3"}, "Severity": "CRITICAL"}])
	lib.vuln_scan_format(a) == "trivy"
	lib.vuln_findings(a) == {{"id": "CVE-2024-45491", "ids": {"CVE-2024-45491"}, "severity": "CRITICAL", "package": "pkg:apk/alpine/expat@2.6.2-r0?arch=x86_64&distro=3.20.3", "purl": "pkg:apk/alpine/expat@2.6.2-r0?arch=x86_64&distro=3.20.3"}}
}

test_trivy_clean_report if {
	a := att(lib.cosign_vuln_type, digest_a, hex_a, {"scanner": {"result": {"SchemaVersion": 2, "Results": [{"Target": "x", "Class": "os-pkgs"}]}}})
	lib.vuln_scan_format(a) == "trivy"
	lib.vuln_findings(a) == set()
}

test_trivy_malformed_report if {
	not lib.vuln_scan_format(trivy_scan("none"))
	not lib.vuln_scan_format(trivy_scan(["CVE-2024-1"]))
	not lib.vuln_findings(trivy_scan(["CVE-2024-1"]))
	not lib.vuln_scan_format(att(lib.cosign_vuln_type, digest_a, hex_a, {"scanner": {"result": "<html>"}}))
}

test_grype_findings if {
	a := att(lib.cosign_vuln_type, digest_a, hex_a, {"scanner": {"result": {"matches": [{
		"vulnerability": {"id": "GHSA-xxxx-yyyy-zzzz", "severity": "High"},
		"relatedVulnerabilities": [{"id": "CVE-2024-0001"}, {"id": 3}],
		"artifact": {"name": "openssl", "purl": "pkg:apk/alpine/openssl@3.3.2-r0"},
	}]}}})
	lib.vuln_scan_format(a) == "grype"
	[f | some f in lib.vuln_findings(a)] == [{"id": "GHSA-XXXX-YYYY-ZZZZ", "ids": {"GHSA-XXXX-YYYY-ZZZZ", "CVE-2024-0001"}, "severity": "HIGH", "package": "pkg:apk/alpine/openssl@3.3.2-r0", "purl": "pkg:apk/alpine/openssl@3.3.2-r0"}]
}

test_intoto_findings if {
	a := att("https://in-toto.io/attestation/vulns/v0.1", digest_a, hex_a, {"scanner": {"result": [
		{"id": "CVE-2024-0002", "severity": [{"method": "nvd", "score": "5.3"}, {"method": "cvss_score", "score": "9.1"}]},
		{"id": "CVE-2024-0003"},
		{"severity": "junk"},
	]}})
	lib.vuln_scan_format(a) == "in-toto"
	{[f.id, f.severity] | some f in lib.vuln_findings(a)} == {["CVE-2024-0002", "CRITICAL"], ["CVE-2024-0003", "UNKNOWN"], ["(unnamed finding)", "UNKNOWN"]}
}

test_scan_time_is_the_earlier if {
	a := trivy_scan([])
	lib.scan_time_ns(a) == lib.time_ns("2026-11-24T09:11:00Z")
	b := object.union(a, {"statement": {"predicate": {"metadata": {"scanFinishedOn": "2027-01-01T00:00:00Z"}}}})
	lib.scan_time_ns(b) == lib.time_ns("2026-11-24T09:12:31Z")
	not lib.scan_time_ns(object.union(a, {"time": {"source": "none"}}))
}

# --- OpenVEX --------------------------------------------------------------------

vex(statements) := att("https://openvex.dev/ns/v0.2.0", digest_a, hex_a, {
	"@context": "https://openvex.dev/ns/v0.2.0",
	"@id": "https://acme.example/vex/app-1.0",
	"author": "Acme Product Security",
	"timestamp": "2026-11-20T10:00:00Z",
	"version": 1,
	"statements": statements,
})

finding := {"id": "CVE-2024-45491", "ids": {"CVE-2024-45491"}, "severity": "CRITICAL", "package": "pkg:apk/alpine/expat@2.6.2-r0?arch=x86_64", "purl": "pkg:apk/alpine/expat@2.6.2-r0?arch=x86_64"}

product := {"@id": concat("", ["pkg:oci/app@sha256%3A", hex_a]), "subcomponents": [{"@id": "pkg:apk/alpine/expat@2.6.2-r0"}]}

not_affected := {
	"vulnerability": {"name": "CVE-2024-45491"},
	"products": [product],
	"status": "not_affected",
	"justification": "vulnerable_code_not_in_execute_path",
}

test_vex_not_affected_waives if {
	doc := input_with([vex([not_affected])], [])
	lib.vex_waives(finding) with input as doc
}

test_vex_fixed_waives if {
	st := object.union(object.remove(not_affected, ["justification"]), {"status": "fixed"})
	doc := input_with([vex([st])], [])
	lib.vex_waives(finding) with input as doc
}

test_vex_not_affected_needs_justification if {
	st := object.remove(not_affected, ["justification"])
	doc1 := input_with([vex([st])], [])
	not lib.vex_waives(finding) with input as doc1
	st2 := object.union(st, {"justification": "trust_me"})
	doc2 := input_with([vex([st2])], [])
	not lib.vex_waives(finding) with input as doc2
	st3 := object.union(st, {"impact_statement": "expat is only used to parse the bundled, signed config"})
	doc3 := input_with([vex([st3])], [])
	lib.vex_waives(finding) with input as doc3
}

test_vex_other_vulnerability if {
	st := object.union(not_affected, {"vulnerability": {"name": "CVE-2024-0001"}})
	doc := input_with([vex([st])], [])
	not lib.vex_waives(finding) with input as doc
}

test_vex_alias_matches if {
	st := object.union(not_affected, {"vulnerability": {"name": "GHSA-aaaa-bbbb-cccc", "aliases": ["cve-2024-45491"]}})
	doc := input_with([vex([st])], [])
	lib.vex_waives(finding) with input as doc
}

test_vex_other_product if {
	st := object.union(not_affected, {"products": [{"@id": concat("", ["pkg:oci/app@sha256%3A", hex_b])}]})
	doc := input_with([vex([st])], [])
	not lib.vex_waives(finding) with input as doc
}

test_vex_other_subcomponent if {
	st := object.union(not_affected, {"products": [{"@id": concat("", ["pkg:oci/app@sha256%3A", hex_a]), "subcomponents": [{"@id": "pkg:apk/alpine/openssl"}]}]})
	doc := input_with([vex([st])], [])
	not lib.vex_waives(finding) with input as doc
}

test_vex_versionless_subcomponent if {
	st := object.union(not_affected, {"products": [{"@id": concat("", ["pkg:oci/app@sha256%3A", hex_a]), "subcomponents": [{"@id": "pkg:apk/alpine/expat"}]}]})
	doc := input_with([vex([st])], [])
	lib.vex_waives(finding) with input as doc
}

test_vex_newer_affected_wins if {
	old := object.union(not_affected, {"timestamp": "2026-11-20T10:00:00Z"})
	new := object.union(object.remove(not_affected, ["justification"]), {"status": "affected", "timestamp": "2026-11-21T10:00:00Z"})
	doc1 := input_with([vex([old, new])], [])
	not lib.vex_waives(finding) with input as doc1
	doc2 := input_with([vex([object.union(new, {"timestamp": "2026-11-19T10:00:00Z"}), old])], [])
	lib.vex_waives(finding) with input as doc2
}

test_vex_equal_time_conflict_fails_closed if {
	a := object.union(object.remove(not_affected, ["justification"]), {"status": "under_investigation"})
	doc := input_with([vex([not_affected, a])], [])
	not lib.vex_waives(finding) with input as doc
}

test_vex_for_other_digest_is_ignored if {
	v := object.union(vex([not_affected]), {"subject": digest_b})
	doc := input_with([v], [])
	not lib.vex_waives(finding) with input as doc
}

test_vex_hostile if {
	doc1 := input_with([vex("x")], [])
	count(lib.vex_statements) == 0 with input as doc1
	doc2 := input_with([vex([7, {"vulnerability": 3}, {"vulnerability": {"name": ""}}])], [])
	count(lib.vex_statements) == 0 with input as doc2
	doc3 := input_with([vex([{"vulnerability": "CVE-2024-45491", "products": "all", "status": "fixed"}])], [])
	not lib.vex_waives(finding) with input as doc3
}

test_vex_v001_strings if {
	# OpenVEX v0.0.1: vulnerability and subcomponents are plain strings.
	st := {"vulnerability": "CVE-2024-45491", "products": [concat("", ["pkg:oci/app@sha256%3A", hex_a])], "subcomponents": ["pkg:apk/alpine/expat@2.6.2-r0"], "status": "fixed"}
	v := object.union(vex([st]), {"predicateType": "https://openvex.dev/ns/v0.0.1", "statement": {"predicateType": "https://openvex.dev/ns/v0.0.1"}})
	doc := input_with([v], [])
	lib.vex_waives(finding) with input as doc
}

test_hostile_signer_time_and_tlog if {
	a := att(sbom_type, digest_a, hex_a, {})
	every patch in [{"signer": "keyless"}, {"signer": {"kind": "keyless", "extensions": "x"}}, {"signer": {"kind": "keyless", "extensions": [1]}}, {"signer": {"kind": ["keyless"]}}] {
		b := object.union(object.union(a, {"signer": null}), patch)
		not lib.signer_claim(b, "sourceRepositoryURI")
		lib.describe(b) == "sha256:9a3f5c0e6b1d signed by authority github-actions"
	}
	every patch in [{"time": "2026-11-24T09:12:31Z"}, {"time": {"source": ["rekor"], "value": "2026-11-24T09:12:31Z"}}, {"time": {"source": "rekor", "value": ["2026-11-24T09:12:31Z"]}}] {
		b := object.union(object.union(a, {"time": null}), patch)
		not lib.evidence_time_ns(b)
	}
	every patch in [{"tlog": "x"}, {"tlog": [null, 7, "x", {"inclusionProof": "true"}]}, {"tlog": {"inclusionProof": true}}] {
		b := object.union(object.union(a, {"tlog": null}), patch)
		not lib.has_tlog_entry(b)
	}
	lib.describe({}) == "(no digest) signed by an unknown signer"
}
