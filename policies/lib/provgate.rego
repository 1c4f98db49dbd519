# provgate shared contract library: `data.provgate.lib`.
#
# Loaded into every contract. Contracts import it with
#
#     import data.provgate.lib
#
# and call e.g. `lib.provenance`, `lib.attestations_of({...})`, `lib.violation(...)`.
#
# Conventions
# - Input is provgate.dev/policy-input/v1 (docs/policy-input.md). It holds only
#   evidence that provgate verified and that this contract's authorities admitted.
#   The library still re-checks, as defence in depth, that each piece of evidence
#   is bound to this image (see is_for_image).
# - Every function is total on hostile content: it never raises a builtin error
#   (regorus raises type and parse errors by default, unlike OPA). Values of the
#   wrong type make a function undefined, and contracts treat undefined as
#   "missing", which denies (fail closed).
# - Time comes from `input.now`, never from time.now_ns(), so that tests and
#   `provgate policy eval` are deterministic.
# - No per-element regex where a string operation does the job: regorus keeps
#   compiled regexes and globs in one process-wide locked cache.
package provgate.lib

# ---------------------------------------------------------------------------
# Violations
# ---------------------------------------------------------------------------

# violation(msg, requirement, fix) is the object every deny/warn rule returns.
#   msg:         one sentence naming what is missing or wrong. provgate prefixes
#                the image and container, so do not repeat the image reference.
#   requirement: a short, stable id (kebab-case) for dashboards and exceptions.
#   fix:         what the team must do, concretely.
violation(msg, requirement, fix) := {"msg": msg, "requirement": requirement, "fix": fix}

# ---------------------------------------------------------------------------
# Predicate types
# ---------------------------------------------------------------------------

slsa_provenance_v1 := "https://slsa.dev/provenance/v1"

slsa_provenance_v02 := "https://slsa.dev/provenance/v0.2"

# provenance_types: the SLSA provenance predicate types the library understands.
provenance_types := {slsa_provenance_v1, slsa_provenance_v02}

cosign_vuln_type := "https://cosign.sigstore.dev/attestation/vuln/v1"

# intoto_vulns_types: the in-toto vulnerability-scan predicate, unversioned and versioned.
intoto_vulns_types := {
	"https://in-toto.io/attestation/vulns",
	"https://in-toto.io/attestation/vulns/v0.1",
	"https://in-toto.io/attestation/vulns/v0.2",
}

# vuln_scan_types: every vulnerability-scan predicate type the library parses.
vuln_scan_types := {cosign_vuln_type} | intoto_vulns_types

# openvex_types: OpenVEX documents attested as in-toto predicates.
openvex_types := {
	"https://openvex.dev/ns",
	"https://openvex.dev/ns/v0.0.1",
	"https://openvex.dev/ns/v0.2.0",
}

# is_cyclonedx_type(t): t is https://cyclonedx.org/bom or https://cyclonedx.org/bom/v1.<minor>.
is_cyclonedx_type(t) if t == "https://cyclonedx.org/bom"

is_cyclonedx_type(t) if {
	is_string(t)
	startswith(t, "https://cyclonedx.org/bom/v1.")
	is_digits(substring(t, count("https://cyclonedx.org/bom/v1."), -1))
}

# is_spdx_type(t): t is https://spdx.dev/Document or https://spdx.dev/Document/v2.<minor>.
is_spdx_type(t) if t == "https://spdx.dev/Document"

is_spdx_type(t) if {
	is_string(t)
	startswith(t, "https://spdx.dev/Document/v2.")
	is_digits(substring(t, count("https://spdx.dev/Document/v2."), -1))
}

# is_sbom_type(t): a CycloneDX or SPDX predicate type.
is_sbom_type(t) if is_cyclonedx_type(t)

is_sbom_type(t) if is_spdx_type(t)

# ---------------------------------------------------------------------------
# Digests and image binding
# ---------------------------------------------------------------------------

_hex_len := {"sha256": 64, "sha384": 96, "sha512": 128}

# is_hex(s, n): s is exactly n lowercase hex characters.
is_hex(s, n) if {
	is_string(s)
	count(s) == n
	trim(s, "0123456789abcdef") == ""
}

# is_digest(d): d is an OCI digest "sha256:<64 hex>" (or sha384/sha512), lowercase.
is_digest(d) if {
	is_string(d)
	parts := split(d, ":")
	count(parts) == 2
	is_hex(parts[1], _hex_len[parts[0]])
}

# image_digests: the digests that stand for this image: input.image.digest and,
# for an image index, the digest of every platform manifest it lists.
image_digests contains d if {
	d := input.image.digest
	is_digest(d)
}

image_digests contains d if {
	d := input.image.platforms[_].digest
	is_digest(d)
}

# is_for_image(ev): the evidence (attestation or signature) is bound to this image:
# its `subject` is the image digest or one of its platform digests, and its signed
# content names that same digest:
#   attestation: some statement.subject[].digest[<alg>] equals the hex of `subject`;
#   cosign signature: payload.critical.image["docker-manifest-digest"] equals `subject`;
#   bundle message signature (payload null): provgate verified the signed digest itself.
# Evidence for any other digest never satisfies a requirement.
is_for_image(ev) if {
	ev.subject in image_digests
	_content_names_subject(ev)
}

_content_names_subject(ev) if {
	is_object(ev.statement)
	parts := split(ev.subject, ":")
	ev.statement.subject[_].digest[parts[0]] == parts[1]
}

_content_names_subject(ev) if {
	not is_object(ev.statement)
	ev.payload.critical.image["docker-manifest-digest"] == ev.subject
}

_content_names_subject(ev) if {
	not is_object(ev.statement)
	ev.payload == null
}

# ---------------------------------------------------------------------------
# Selecting evidence
# ---------------------------------------------------------------------------

# attestations_of(types): the attestations for this image (is_for_image) whose
# predicateType is in `types` (a set or array of exact URIs), and whose signed
# statement carries that same predicateType.
attestations_of(types) := {a |
	a := input.attestations[_]
	a.predicateType in types
	a.statement.predicateType == a.predicateType
	is_for_image(a)
}

# sbom_attestations: CycloneDX and SPDX attestations for this image, any version
# (see is_sbom_type). cyclonedx_attestations / spdx_attestations: one format only.
sbom_attestations := {a |
	some a in image_attestations
	is_sbom_type(a.predicateType)
}

cyclonedx_attestations := {a |
	some a in sbom_attestations
	is_cyclonedx_type(a.predicateType)
}

spdx_attestations := {a |
	some a in sbom_attestations
	is_spdx_type(a.predicateType)
}

# image_attestations: every attestation for this image, whatever its type.
image_attestations := {a |
	a := input.attestations[_]
	is_string(a.predicateType)
	a.statement.predicateType == a.predicateType
	is_for_image(a)
}

# image_signatures: every signature (cosign simple signing or bundle message
# signature) for this image.
image_signatures := {s |
	s := input.signatures[_]
	is_for_image(s)
}

# image_evidence: image_attestations and image_signatures together.
image_evidence := image_attestations | image_signatures

# provenance: the SLSA provenance attestations (v1 and v0.2) for this image.
provenance := attestations_of(provenance_types)

# ---------------------------------------------------------------------------
# Signers and transparency log
# ---------------------------------------------------------------------------

# is_keyless(ev): signed with a Fulcio certificate (OIDC identity).
is_keyless(ev) if ev.signer.kind == "keyless"

# is_key_signed(ev): signed with a configured public key.
is_key_signed(ev) if ev.signer.kind == "key"

# has_tlog_entry(ev): at least one verified transparency-log entry with an
# inclusion proof or an inclusion promise (Rekor SET).
has_tlog_entry(ev) if {
	e := ev.tlog[_]
	_tlog_backed(e)
}

_tlog_backed(e) if e.inclusionProof == true

_tlog_backed(e) if e.inclusionPromise == true

# signer_claim(ev, name): a Fulcio certificate claim of a keyless signer by name
# (sourceRepositoryURI, sourceRepositoryRef, buildTrigger, runnerEnvironment,
# buildSignerURI, ...). Undefined for key signers, for absent or empty claims.
signer_claim(ev, name) := v if {
	is_keyless(ev)
	v := ev.signer.extensions[name]
	is_string(v)
	v != ""
}

# signer_description(ev): a short human description of who signed the evidence,
# for messages: "<subject> (issuer <issuer>)" or "key <keyName>".
signer_description(ev) := sprintf("%s (issuer %s)", [ev.signer.subject, ev.signer.issuer]) if {
	is_keyless(ev)
	is_string(ev.signer.subject)
	is_string(ev.signer.issuer)
} else := sprintf("key %s", [ev.signer.keyName]) if {
	is_key_signed(ev)
	is_string(ev.signer.keyName)
} else := sprintf("key %s", [ev.signer.keyId]) if {
	is_key_signed(ev)
	is_string(ev.signer.keyId)
} else := sprintf("authority %v", [ev.authority]) if {
	is_string(ev.authority)
} else := "an unknown signer"

# ---------------------------------------------------------------------------
# Time
# ---------------------------------------------------------------------------

ns_per_day := ((24 * 60) * 60) * 1000000000

# time_ns(s): s (an RFC 3339 date-time such as "2026-11-25T10:00:00Z" or with an
# offset and fractional seconds) in nanoseconds since the epoch. Undefined, never
# an error, for anything else: wrong type, malformed text, impossible dates
# (2026-02-29), years outside 1678..2261 (the int64 nanosecond range).
time_ns(s) := ns if {
	is_string(s)
	m := regex.find_all_string_submatch_n(
		`^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?(?:[Zz]|[+-]([0-9]{2}):([0-9]{2}))$`,
		s, 1,
	)
	count(m) == 1
	g := m[0]
	y := _num(g[1])
	mo := _num(g[2])
	d := _num(g[3])
	y >= 1678
	y <= 2261
	mo >= 1
	mo <= 12
	d >= 1
	d <= _days_in_month(y, mo)
	_num(g[4]) <= 23
	_num(g[5]) <= 59
	_num(g[6]) <= 59
	_offset_ok(g[8], g[9])
	ns := time.parse_rfc3339_ns(s)
}

_offset_ok("", "")

_offset_ok(h, mi) if {
	h != ""
	_num(h) <= 23
	_num(mi) <= 59
}

# _num(s): a decimal string of digits as a number ("007" -> 7). to_number rejects leading zeros.
_num(s) := 0 if trim_left(s, "0") == ""

_num(s) := to_number(t) if {
	t := trim_left(s, "0")
	t != ""
}

_days_in_month(y, m) := 29 if {
	m == 2
	_leap(y)
} else := 28 if {
	m == 2
} else := 30 if {
	m in {4, 6, 9, 11}
} else := 31

_leap(y) if {
	y % 4 == 0
	y % 100 != 0
}

_leap(y) if y % 400 == 0

# now_ns: input.now in nanoseconds. Undefined if input.now is missing or malformed,
# which makes every age undefined, so age-based requirements deny.
now_ns := time_ns(input.now)

# trusted_time_sources: time sources provgate verified cryptographically.
trusted_time_sources := {"rfc3161", "rekor"}

# evidence_time_ns(ev): the verified signing time of the evidence (an RFC 3161
# timestamp or the Rekor integrated time). Undefined when time.source is "none"
# or the value is missing.
evidence_time_ns(ev) := t if {
	ev.time.source in trusted_time_sources
	t := time_ns(ev.time.value)
}

# has_trusted_time(ev): the evidence has a verified signing time.
has_trusted_time(ev) if evidence_time_ns(ev)

# age_days(ev): days (fractional) between the verified signing time and input.now.
# Undefined when the evidence has no trusted time or input.now is unusable.
# Negative when the signing time is after input.now.
age_days(ev) := (now_ns - evidence_time_ns(ev)) / ns_per_day

# age_days_of_time(s): days between an RFC 3339 time string s and input.now, for
# times taken from content (e.g. a scan's scanFinishedOn). Undefined if unusable.
age_days_of_time(s) := (now_ns - time_ns(s)) / ns_per_day

# max_future_skew_ns: how far after input.now a signing time may lie (5 minutes).
max_future_skew_ns := (5 * 60) * 1000000000

# is_future_dated(ev): the evidence's verified time lies after input.now by more
# than max_future_skew_ns: a clock or timestamping problem; never trust it for freshness.
is_future_dated(ev) if evidence_time_ns(ev) - now_ns > max_future_skew_ns

# format_days(d): a number of days for messages, rounded down to a whole day: "12".
format_days(d) := sprintf("%v", [floor(d)])

# ---------------------------------------------------------------------------
# Contract parameters
# ---------------------------------------------------------------------------

# params: the contract parameters (contract.yaml defaults merged with the binding's overrides).
params := p if {
	p := input.contract.parameters
	is_object(p)
} else := {}

# missing_string_list_parameters(names): the names (from a set) whose parameter is
# not a non-empty list of strings. Contracts deny on these: an empty allow-list is
# a configuration error, never "allow all".
missing_string_list_parameters(names) := {n |
	some n in names
	not _is_nonempty_string_list(object.get(params, n, null))
}

_is_nonempty_string_list(l) if {
	is_array(l)
	count(l) > 0
	every x in l {
		is_string(x)
		x != ""
	}
}

# number_parameter(name): the parameter as a number; undefined if absent or not a
# number (contracts deny on that, see invalid_number_parameters).
number_parameter(name) := n if {
	n := params[name]
	is_number(n)
}

# invalid_number_parameters(names): names whose parameter is not a number >= 0.
invalid_number_parameters(names) := {n |
	some n in names
	not _nonneg_number(object.get(params, n, null))
}

_nonneg_number(x) if {
	is_number(x)
	x >= 0
}

# ---------------------------------------------------------------------------
# Pattern matching (allow-lists)
# ---------------------------------------------------------------------------

# is_glob(p): p contains a glob metacharacter (* ? [ {).
is_glob(p) if contains(p, "*")

is_glob(p) if contains(p, "?")

is_glob(p) if contains(p, "[")

is_glob(p) if contains(p, "{")

# pattern_matches(p, v): v matches the allow-list pattern p.
# - A pattern without glob metacharacters must equal v exactly.
# - Otherwise p is a glob matched with glob.match(p, null, v): anchored at both
#   ends, with NO delimiter, so `*` matches any run of characters including `/`
#   (e.g. "https://github.com/acme/*" matches "https://github.com/acme/app" and
#   also "https://github.com/acme/team/app"), `?` one character, `[abc]` a class,
#   `{a,b}` alternatives. Always write the scheme and host in full.
pattern_matches(p, v) if {
	is_string(p)
	is_string(v)
	not is_glob(p)
	p == v
}

pattern_matches(p, v) if {
	is_string(p)
	is_string(v)
	is_glob(p)
	glob.match(p, null, v)
}

# matches_any(v, patterns): v matches at least one pattern of a list or set.
matches_any(v, patterns) if {
	p := patterns[_]
	pattern_matches(p, v)
}

# ---------------------------------------------------------------------------
# SLSA provenance: v1 and v0.2 normalisers
# ---------------------------------------------------------------------------

# is_provenance_v1(a) / is_provenance_v02(a): which SLSA version the attestation
# declares. Normalisers follow the declared predicateType, never the body's shape,
# so a v1 type with a v0.2 body finds no builder id and is denied.
is_provenance_v1(a) if a.predicateType == slsa_provenance_v1

is_provenance_v02(a) if a.predicateType == slsa_provenance_v02

# builder_id(a): v1 runDetails.builder.id, v0.2 builder.id. Undefined if missing or empty.
builder_id(a) := id if {
	is_provenance_v1(a)
	id := a.statement.predicate.runDetails.builder.id
	is_string(id)
	id != ""
}

builder_id(a) := id if {
	is_provenance_v02(a)
	id := a.statement.predicate.builder.id
	is_string(id)
	id != ""
}

# build_type(a): v1 buildDefinition.buildType, v0.2 buildType. Undefined if missing or empty.
build_type(a) := t if {
	is_provenance_v1(a)
	t := a.statement.predicate.buildDefinition.buildType
	is_string(t)
	t != ""
}

build_type(a) := t if {
	is_provenance_v02(a)
	t := a.statement.predicate.buildType
	is_string(t)
	t != ""
}

# external_parameters(a): v1 buildDefinition.externalParameters, v0.2
# invocation.parameters; {} when absent.
external_parameters(a) := p if {
	is_provenance_v1(a)
	p := a.statement.predicate.buildDefinition.externalParameters
	is_object(p)
} else := p if {
	is_provenance_v02(a)
	p := a.statement.predicate.invocation.parameters
	is_object(p)
} else := {}

# resolved_dependencies(a): the build's inputs as a list of objects with at least
# `uri` and `digest` (a DigestSet such as {"sha256": "..."}) and, for v1, optionally
# `name`, `mediaType`, `annotations`. v1: buildDefinition.resolvedDependencies;
# v0.2: materials. Entries that are not objects are dropped; [] when absent.
resolved_dependencies(a) := [d |
	d := a.statement.predicate.buildDefinition.resolvedDependencies[_]
	is_object(d)
] if {
	is_provenance_v1(a)
	is_array(a.statement.predicate.buildDefinition.resolvedDependencies)
} else := [d |
	d := a.statement.predicate.materials[_]
	is_object(d)
] if {
	is_provenance_v02(a)
	is_array(a.statement.predicate.materials)
} else := []

# config_source(a): where the build definition came from, normalised to
# {"uri": string|null, "digest": object, "path": string|null}:
#   v1 BuildKit:   externalParameters.configSource {uri, digest, path}
#   v0.2:          invocation.configSource {uri, digest, entryPoint}
# Undefined when the provenance records none.
config_source(a) := {
	"uri": _string_or_null(object.get(cs, "uri", null)),
	"digest": _object_or_empty(object.get(cs, "digest", null)),
	"path": _string_or_null(object.get(cs, "path", null)),
} if {
	is_provenance_v1(a)
	cs := a.statement.predicate.buildDefinition.externalParameters.configSource
	is_object(cs)
}

config_source(a) := {
	"uri": _string_or_null(object.get(cs, "uri", null)),
	"digest": _object_or_empty(object.get(cs, "digest", null)),
	"path": _string_or_null(object.get(cs, "entryPoint", null)),
} if {
	is_provenance_v02(a)
	cs := a.statement.predicate.invocation.configSource
	is_object(cs)
}

_string_or_null(x) := x if is_string(x)

_string_or_null(x) := null if not is_string(x)

_object_or_empty(x) := x if is_object(x)

_object_or_empty(x) := {} if not is_object(x)

# source_repositories(a): every source repository the provenance or its signer
# names, normalised with normalize_repo_uri. Sources looked at:
#   - the keyless signer's Fulcio claim sourceRepositoryURI;
#   - v1 externalParameters.workflow.repository (GitHub Actions / slsa-github-generator),
#     externalParameters.source (string, or object with `uri`; GitLab and generic builders),
#     externalParameters.repository (string),
#     externalParameters.buildConfigSource.repository (Google Cloud Build),
#     externalParameters.configSource.uri (BuildKit, git context);
#   - v0.2 invocation.configSource.uri.
# Empty when none is recorded: contracts deny that (the source cannot be checked).
source_repositories(a) := {normalize_repo_uri(u) | some u in _raw_sources(a)}

_raw_sources(a) contains u if u := signer_claim(a, "sourceRepositoryURI")

_raw_sources(a) contains u if {
	is_provenance_v1(a)
	some u in _v1_source_values(a.statement.predicate.buildDefinition.externalParameters)
}

_raw_sources(a) contains u if {
	is_provenance_v02(a)
	u := a.statement.predicate.invocation.configSource.uri
	_nonempty_string(u)
}

_v1_source_values(p) contains u if {
	u := p.workflow.repository
	_nonempty_string(u)
}

_v1_source_values(p) contains u if {
	u := p.source
	_nonempty_string(u)
}

_v1_source_values(p) contains u if {
	u := p.source.uri
	_nonempty_string(u)
}

_v1_source_values(p) contains u if {
	u := p.repository
	_nonempty_string(u)
}

_v1_source_values(p) contains u if {
	u := p.buildConfigSource.repository
	_nonempty_string(u)
}

_v1_source_values(p) contains u if {
	u := p.configSource.uri
	_nonempty_string(u)
}

_nonempty_string(s) if {
	is_string(s)
	s != ""
}

# normalize_repo_uri(u): a repository URI in a comparable form:
#   "git+https://github.com/acme/app@refs/heads/main"  -> "https://github.com/acme/app"
#   "https://github.com/acme/app.git#refs/heads/main"  -> "https://github.com/acme/app"
#   "git+ssh://git@github.com/acme/app.git"            -> "ssh://github.com/acme/app"
# It drops a "git+" prefix, a "#fragment", user info, an "@ref" suffix, a
# trailing ".git" and a trailing "/". Case is kept.
normalize_repo_uri(u) := out if {
	s := split(trim_prefix(u, "git+"), "#")[0]
	base := _drop_ref(s)
	out := trim_suffix(trim_suffix(base, "/"), ".git")
}

_drop_ref(s) := concat("", [scheme, "://", host, path]) if {
	contains(s, "://")
	i := indexof(s, "://")
	scheme := substring(s, 0, i)
	rest := substring(s, i + 3, -1)
	authority := split(rest, "/")[0]
	hostparts := split(authority, "@")
	host := hostparts[count(hostparts) - 1]
	path := split(substring(rest, count(authority), -1), "@")[0]
} else := split(s, "@")[0]

# ---------------------------------------------------------------------------
# Dependencies: Dockerfiles and container images
# ---------------------------------------------------------------------------

# strong_digest(digest_set): a DigestSet object holds a well-formed sha256,
# sha384 or sha512 value.
strong_digest(ds) if {
	is_object(ds)
	some alg, n in _hex_len
	is_hex(ds[alg], n)
}

# dependency_file_names(dep): file names a dependency is known by: the base name
# of `name`, of the `uri` path (query and fragment removed) and of the `uri`
# fragment. Used to recognise Dockerfiles.
dependency_file_names(dep) := {n |
	some s in _dep_name_sources(dep)
	n := basename(s)
	n != ""
}

_dep_name_sources(dep) contains s if {
	s := dep.name
	is_string(s)
}

_dep_name_sources(dep) contains s if {
	is_string(dep.uri)
	s := split(split(dep.uri, "#")[0], "?")[0]
}

_dep_name_sources(dep) contains s if {
	is_string(dep.uri)
	parts := split(dep.uri, "#")
	count(parts) > 1
	s := parts[1]
}

# basename(p): the last "/"-separated component of p.
basename(p) := b if {
	parts := split(p, "/")
	b := parts[count(parts) - 1]
}

# is_dockerfile_name(n): n (compared case-insensitively) is "Dockerfile" or
# "Containerfile", or ends in ".Dockerfile"/".Containerfile" (api.Dockerfile), or
# starts with "Dockerfile."/"Containerfile." (Dockerfile.prod).
is_dockerfile_name(n) if {
	l := lower(n)
	some base in {"dockerfile", "containerfile"}
	_dockerfile_form(l, base)
}

_dockerfile_form(l, base) if l == base

_dockerfile_form(l, base) if endswith(l, concat("", [".", base]))

_dockerfile_form(l, base) if startswith(l, concat("", [base, "."]))

# is_dockerfile_dependency(dep): a resolved dependency that is a Dockerfile.
is_dockerfile_dependency(dep) if {
	some n in dependency_file_names(dep)
	is_dockerfile_name(n)
}

# image_reference(dep): the container-image reference a dependency's uri names,
# with its scheme removed, or undefined if the uri does not look like an image:
#   pkg:docker/<name>@<version>?...   (BuildKit, package-url)  -> "<name>@<version>"
#   pkg:oci/<name>@<version>?...                               -> "<name>@<version>"
#   oci://<ref>, docker://<ref>                                -> "<ref>"
#   <registry>/<path>[:tag][@sha256:...] where <registry> has a "." or ":" or is
#   "localhost" (ghcr.io/acme/base:1, registry.example.com:5000/x@sha256:...)
image_reference(dep) := r if {
	u := dep.uri
	is_string(u)
	some prefix in {"pkg:docker/", "pkg:oci/", "oci://", "docker://"}
	startswith(u, prefix)
	r := split(substring(u, count(prefix), -1), "?")[0]
	r != ""
}

image_reference(dep) := u if {
	u := dep.uri
	is_string(u)
	not contains(u, "://")
	not startswith(u, "pkg:")
	parts := split(u, "/")
	count(parts) > 1
	_registry_host(parts[0])
	parts[1] != ""
}

_registry_host(h) if contains(h, ".")

_registry_host(h) if contains(h, ":")

_registry_host("localhost")

# image_repository(ref): the repository part of an image reference (tag and digest
# removed): "docker.io/library/alpine:3.20@sha256:..." -> "docker.io/library/alpine".
image_repository(ref) := repo if {
	noat := split(ref, "@")[0]
	parts := split(noat, "/")
	last := parts[count(parts) - 1]
	lastname := split(last, ":")[0]
	repo := concat("/", array.concat(array.slice(parts, 0, count(parts) - 1), [lastname]))
}

# buildkit_frontend_repositories: images BuildKit records as dependencies that are
# Dockerfile frontends (`# syntax=docker/dockerfile:1`), not base images.
buildkit_frontend_repositories := {
	"docker/dockerfile", "docker.io/docker/dockerfile", "docker.io/docker/dockerfile-upstream",
	"docker/dockerfile-upstream", "docker/dockerfile-copy",
}

# is_image_dependency(dep): the dependency is a container image that is not a
# BuildKit frontend: a base image (FROM) or another image the build pulled.
is_image_dependency(dep) if {
	ref := image_reference(dep)
	not image_repository(ref) in buildkit_frontend_repositories
}

# image_dependency_digest(dep): the sha256 digest ("sha256:<hex>") the provenance
# records for an image dependency: digest.sha256, or an "@sha256:<hex>" in the
# uri. Undefined if neither is present or the two disagree.
image_dependency_digest(dep) := d if {
	ds := _image_dep_digests(dep)
	count(ds) == 1
	some d in ds
}

_image_dep_digests(dep) := {d |
	some d in _image_dep_digest_candidates(dep)
}

_image_dep_digest_candidates(dep) contains concat("", ["sha256:", h]) if {
	h := dep.digest.sha256
	is_hex(h, 64)
}

_image_dep_digest_candidates(dep) contains d if {
	is_string(dep.uri)
	parts := split(split(dep.uri, "?")[0], "@")
	d := parts[count(parts) - 1]
	is_digest(d)
	startswith(d, "sha256:")
}

# ---------------------------------------------------------------------------
# Vulnerability scans
# ---------------------------------------------------------------------------

# severity_rank: ordering of normalised severities.
severity_rank := {"UNKNOWN": 0, "NEGLIGIBLE": 1, "LOW": 2, "MEDIUM": 3, "HIGH": 4, "CRITICAL": 5}

# normalize_severity(s): a scanner severity as one of CRITICAL, HIGH, MEDIUM, LOW,
# NEGLIGIBLE, UNKNOWN. Accepts names in any case (Trivy "CRITICAL", Grype
# "Critical", in-toto "critical"; "moderate" -> MEDIUM, "important" -> HIGH,
# "none"/"info" -> NEGLIGIBLE) and CVSS base scores as numbers or decimal strings
# (>= 9.0 CRITICAL, >= 7.0 HIGH, >= 4.0 MEDIUM, > 0 LOW, 0 NEGLIGIBLE). Anything
# else is UNKNOWN.
normalize_severity(s) := n if {
	is_string(s)
	n := _severity_names[upper(trim_space(s))]
} else := cvss_severity(x) if {
	x := decimal(s)
} else := cvss_severity(s) if {
	is_number(s)
} else := "UNKNOWN"

_severity_names := {
	"CRITICAL": "CRITICAL", "HIGH": "HIGH", "IMPORTANT": "HIGH", "MEDIUM": "MEDIUM",
	"MODERATE": "MEDIUM", "LOW": "LOW", "NEGLIGIBLE": "NEGLIGIBLE", "NONE": "NEGLIGIBLE",
	"INFO": "NEGLIGIBLE", "UNKNOWN": "UNKNOWN",
}

# cvss_severity(score): the CVSS v3 qualitative rating of a base score.
cvss_severity(x) := "CRITICAL" if {
	x >= 9
} else := "HIGH" if {
	x >= 7
} else := "MEDIUM" if {
	x >= 4
} else := "LOW" if {
	x > 0
} else := "NEGLIGIBLE" if {
	x == 0
} else := "UNKNOWN"

# decimal(s): the number a string of the form digits[.digits] denotes ("9.8" -> 9.8,
# "07" -> 7). Undefined, never an error, for anything else.
decimal(s) := n if {
	is_string(s)
	parts := split(trim_space(s), ".")
	count(parts) == 1
	is_digits(parts[0])
	n := _num(parts[0])
} else := n if {
	is_string(s)
	parts := split(trim_space(s), ".")
	count(parts) == 2
	is_digits(parts[0])
	is_digits(parts[1])
	n := to_number(concat(".", [_strip_zeros(parts[0]), parts[1]]))
}

_strip_zeros(p) := "0" if trim_left(p, "0") == ""

_strip_zeros(p) := t if {
	t := trim_left(p, "0")
	t != ""
}

# is_digits(s): s is a non-empty string of ASCII digits.
is_digits(s) if {
	is_string(s)
	s != ""
	trim(s, "0123456789") == ""
}

# max_severity(l): the highest normalised severity among a list or set of raw
# severities (see normalize_severity); "UNKNOWN" when there is none.
max_severity(l) := s if {
	ranks := {severity_rank[normalize_severity(x)] | x := l[_]}
	count(ranks) > 0
	r := max(ranks)
	some s, sr in severity_rank
	sr == r
} else := "UNKNOWN"

# vuln_scan_format(a): how the result of a vulnerability-scan attestation is
# encoded:
#   "in-toto": in-toto vulns predicate; scanner.result is a list of {id, severity}
#              ({vulnerability: {id, severity}} in v0.1 documents);
#   "trivy":   cosign vuln predicate; scanner.result is a Trivy JSON report
#              (SchemaVersion, Results[].Vulnerabilities[]), as `trivy --format cosign-vuln` writes;
#   "grype":   cosign vuln predicate; scanner.result is a Grype JSON report (matches[]);
#   "sarif":   cosign vuln predicate; scanner.result is SARIF 2.1 (runs[].results[]).
# Undefined when the result is none of these or is malformed: contracts deny then,
# since a report that cannot be read proves nothing.
vuln_scan_format(a) := "in-toto" if {
	a.predicateType in intoto_vulns_types
	r := a.statement.predicate.scanner.result
	is_array(r)
	every item in r {
		is_object(_intoto_vuln(item))
	}
} else := "trivy" if {
	a.predicateType == cosign_vuln_type
	r := a.statement.predicate.scanner.result
	is_number(r.SchemaVersion)
	_trivy_results_ok(r)
} else := "grype" if {
	a.predicateType == cosign_vuln_type
	m := a.statement.predicate.scanner.result.matches
	is_array(m)
	every x in m {
		is_object(x)
		is_object(x.vulnerability)
	}
} else := "sarif" if {
	a.predicateType == cosign_vuln_type
	runs := a.statement.predicate.scanner.result.runs
	is_array(runs)
	every run in runs {
		is_object(run)
		is_array(run.results)
		every res in run.results {
			is_object(res)
		}
	}
}

# Trivy omits Results when nothing was scanned and Vulnerabilities when a target
# has none; anything else present must have the documented shape.
_trivy_results_ok(r) if not "Results" in object.keys(r)

_trivy_results_ok(r) if r.Results == null

_trivy_results_ok(r) if {
	is_array(r.Results)
	every res in r.Results {
		is_object(res)
		_trivy_vulns_ok(res)
	}
}

_trivy_vulns_ok(res) if not "Vulnerabilities" in object.keys(res)

_trivy_vulns_ok(res) if res.Vulnerabilities == null

_trivy_vulns_ok(res) if {
	is_array(res.Vulnerabilities)
	every v in res.Vulnerabilities {
		is_object(v)
	}
}

# vuln_findings(a): the findings of a vulnerability-scan attestation, each
# normalised to
#   {"id": "CVE-2024-1234", "ids": {the id and its aliases, upper-cased},
#    "severity": "CRITICAL" (see normalize_severity), "package": purl or name or "",
#    "purl": "" unless known, "fixedVersion": "" unless known}
# A finding without an id gets the id "(unnamed finding)". The empty set for a
# report without findings; undefined when vuln_scan_format(a) is undefined.
vuln_findings(a) := {f |
	raw := a.statement.predicate.scanner.result.Results[_].Vulnerabilities[_]
	purl := _str(raw, ["PkgIdentifier", "PURL"])
	f := _finding(
		_str(raw, ["VulnerabilityID"]),
		set(),
		normalize_severity(_str(raw, ["Severity"])),
		_first_nonempty([purl, _str(raw, ["PkgName"])]),
		purl,
		_str(raw, ["FixedVersion"]),
	)
} if {
	vuln_scan_format(a) == "trivy"
} else := {f |
	m := a.statement.predicate.scanner.result.matches[_]
	purl := _str(m, ["artifact", "purl"])
	f := _finding(
		_str(m, ["vulnerability", "id"]),
		{id | id := m.relatedVulnerabilities[_].id; is_string(id)},
		normalize_severity(_str(m, ["vulnerability", "severity"])),
		_first_nonempty([purl, _str(m, ["artifact", "name"])]),
		purl,
		_first_nonempty([v | v := m.vulnerability.fix.versions[_]; is_string(v)]),
	)
} if {
	vuln_scan_format(a) == "grype"
} else := {f |
	run := a.statement.predicate.scanner.result.runs[_]
	res := run.results[_]
	rid := _str(res, ["ruleId"])
	f := _finding(rid, _sarif_ids(rid), _sarif_severity(_sarif_rule(run, res)), "", "", "")
} if {
	vuln_scan_format(a) == "sarif"
} else := {f |
	v := _intoto_vuln(a.statement.predicate.scanner.result[_])
	f := _finding(
		_str(v, ["id"]),
		set(),
		max_severity([sc | sc := v.severity[_].score]),
		"", "", "",
	)
} if {
	vuln_scan_format(a) == "in-toto"
}

_finding(id, aliases, sev, pkg, purl, fixed) := {
	"id": upper(id),
	"ids": {upper(i) | some i in ({id} | aliases)},
	"severity": sev,
	"package": pkg,
	"purl": purl,
	"fixedVersion": fixed,
} if {
	id != ""
}

_finding(id, _, sev, pkg, purl, fixed) := {
	"id": "(unnamed finding)",
	"ids": set(),
	"severity": sev,
	"package": pkg,
	"purl": purl,
	"fixedVersion": fixed,
} if {
	id == ""
}

# _str(x, path): the non-empty string at path inside x, else "".
_str(x, path) := s if {
	s := object.get(x, path, "")
	is_string(s)
} else := ""

_first_nonempty(l) := s if {
	ss := [x | x := l[_]; _nonempty_string(x)]
	count(ss) > 0
	s := ss[0]
} else := ""

# in-toto vulns v0.2 items are {id, severity}; v0.1 documents may nest them as
# {vulnerability: {id, severity}}.
_intoto_vuln(item) := item.vulnerability if {
	is_object(item)
	is_object(item.vulnerability)
} else := item if {
	is_object(item)
}

# SARIF: the rule a result refers to, by ruleIndex or by id; {} if none.
_sarif_rule(run, res) := rule if {
	rule := run.tool.driver.rules[res.ruleIndex]
	is_object(rule)
} else := rule if {
	rule := run.tool.driver.rules[_]
	is_object(rule)
	rule.id == res.ruleId
} else := {}

# SARIF severity: a severity word in the rule's properties.tags (Trivy), else the
# numeric properties["security-severity"] (GitHub code scanning, Grype), else UNKNOWN.
_sarif_severity(rule) := s if {
	words := {t | t := rule.properties.tags[_]; is_string(t); _severity_names[upper(t)]}
	count(words) > 0
	s := max_severity(words)
} else := normalize_severity(rule.properties["security-severity"]) if {
	rule.properties["security-severity"]
} else := "UNKNOWN"

# SARIF rule ids may carry a package suffix (Grype: "CVE-2024-1234-openssl"); the
# CVE or GHSA id is derived as an alias so that VEX statements match it.
_sarif_ids(rid) := {cve} if {
	startswith(upper(rid), "CVE-")
	p := split(rid, "-")
	count(p) > 3
	cve := concat("-", array.slice(p, 0, 3))
} else := {ghsa} if {
	startswith(upper(rid), "GHSA-")
	p := split(rid, "-")
	count(p) > 4
	ghsa := concat("-", array.slice(p, 0, 4))
} else := set()

# scan_time_ns(a): when a scan's data was produced: the earlier of the verified
# signing time and the predicate's metadata.scanFinishedOn (a re-signed old scan
# is as old as the scan). Undefined without a verified signing time.
scan_time_ns(a) := min({t, evidence_time_ns(a)}) if {
	t := time_ns(a.statement.predicate.metadata.scanFinishedOn)
} else := evidence_time_ns(a)

# scan_age_days(a): days since scan_time_ns(a). Undefined without a trusted time.
scan_age_days(a) := (now_ns - scan_time_ns(a)) / ns_per_day

# ---------------------------------------------------------------------------
# OpenVEX
# ---------------------------------------------------------------------------

# openvex_justifications: the OpenVEX justifications a not_affected statement must carry.
openvex_justifications := {
	"component_not_present",
	"vulnerable_code_not_present",
	"vulnerable_code_not_in_execute_path",
	"vulnerable_code_cannot_be_controlled_by_adversary",
	"inline_mitigations_already_exist",
}

# vex_statements: the OpenVEX statements, from OpenVEX attestations for this
# image, that apply to this image, each normalised to
#   {"ids": {vulnerability name, @id and aliases, upper-cased}, "status": "...",
#    "justification": "..." or "", "subcomponents": {purls}, "time_ns": number}
# A statement applies to the image when it lists no products (it then speaks of
# the attested subject) or when one of its products names one of the image's
# digests (the hex appears in the product's @id, identifiers or hashes). OpenVEX
# v0.2.0 (objects) and v0.0.1 (plain strings) shapes are both read. time_ns is the
# statement's timestamp, else its last_updated, else the document's timestamp, else 0.
vex_statements := {s |
	some a in attestations_of(openvex_types)
	doc := a.statement.predicate
	st := doc.statements[_]
	is_object(st)
	_vex_applies_to_image(st)
	ids := _vex_ids(st.vulnerability)
	count(ids) > 0
	s := {
		"ids": ids,
		"status": _str(st, ["status"]),
		"justification": _str(st, ["justification"]),
		"subcomponents": {c | c := _component_id(st.subcomponents[_])},
		"time_ns": _vex_time(st, doc),
	}
}

_vex_ids(v) := {upper(v)} if _nonempty_string(v)

_vex_ids(v) := {upper(x) |
	some x in (({y | y := v.name} | {y | y := v["@id"]}) | {y | y := v.aliases[_]})
	_nonempty_string(x)
} if is_object(v)

_vex_applies_to_image(st) if not _has_products(st)

_vex_applies_to_image(st) if {
	p := st.products[_]
	s := _product_strings(p)[_]
	hex := split(image_digests[_], ":")[1]
	contains(s, hex)
}

_has_products(st) if st.products[_]

_product_strings(p) := {p} if is_string(p)

_product_strings(p) := {s |
	some s in (({v | v := p["@id"]} | {v | v := p.identifiers[_]}) | {v | v := p.hashes[_]})
	is_string(s)
} if is_object(p)

_component_id(c) := c if _nonempty_string(c)

_component_id(c) := c["@id"] if {
	is_object(c)
	_nonempty_string(c["@id"])
}

_vex_time(st, doc) := t if {
	t := time_ns(st.timestamp)
} else := t if {
	t := time_ns(st.last_updated)
} else := t if {
	t := time_ns(doc.timestamp)
} else := 0

# vex_waives(f): OpenVEX waives finding f (from vuln_findings): among the statements
# that match it, the newest all say "not_affected" with a justification from
# openvex_justifications, or "fixed". An "affected" or "under_investigation"
# statement at least as new wins, and so does a conflict between equally new
# statements (fail closed). A statement that lists subcomponents matches only
# findings whose package purl is one of them.
vex_waives(f) if {
	stmts := {s | some s in vex_statements; _vex_matches(s, f)}
	count(stmts) > 0
	newest := max({s.time_ns | some s in stmts})
	every s in stmts {
		_vex_waiver_or_older(s, newest)
	}
}

_vex_waiver_or_older(s, newest) if s.time_ns < newest

_vex_waiver_or_older(s, newest) if {
	s.time_ns == newest
	_vex_waiver(s)
}

_vex_waiver(s) if {
	s.status == "not_affected"
	s.justification in openvex_justifications
}

_vex_waiver(s) if s.status == "fixed"

_vex_matches(s, f) if {
	some id in f.ids
	id in s.ids
	_vex_component_matches(s, f)
}

_vex_component_matches(s, _) if count(s.subcomponents) == 0

_vex_component_matches(s, f) if {
	f.purl != ""
	f.purl in s.subcomponents
}
