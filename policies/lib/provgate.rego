# provgate shared contract library: `data.provgate.lib`.
#
# Loaded into every contract. Import it with
#
#     import data.provgate.lib
#
# Conventions
# - The input is provgate.dev/policy-input/v1 (docs/policy-input.md). It holds
#   only evidence that provgate verified and that this contract's authorities
#   admitted. The library still re-checks, as defence in depth, that each
#   piece of evidence is bound to this image (is_for_image).
# - Every function is total on hostile content. regorus raises builtin type
#   errors (count(3), lower(3), to_number("07") ...) and an error denies the
#   whole contract with an unhelpful message, so every builtin call is guarded.
#   A value of the wrong type makes a function undefined; contracts treat
#   undefined as "missing", which denies.
# - Time comes from input.now, never from time.now_ns(), so tests and
#   `provgate policy eval` are deterministic.
# - No regex: string builtins do the job, and regorus keeps compiled regexes
#   and globs in one process-wide locked cache.
package provgate.lib

# ---------------------------------------------------------------------------
# Violations
# ---------------------------------------------------------------------------

# violation(msg, requirement, fix): the object every deny/warn rule returns.
#   msg:         what is missing or wrong, lower-case, no trailing period.
#                provgate prefixes the container and image, and appends
#                " (requirement <id>) Fix: <fix>", so do not repeat the image.
#   requirement: a short, stable kebab-case id for dashboards and exemptions.
#   fix:         what the team must do, concretely, as a sentence.
violation(msg, requirement, fix) := {"msg": msg, "requirement": requirement, "fix": fix}

# ---------------------------------------------------------------------------
# Strings, numbers and digests
# ---------------------------------------------------------------------------

# nonempty_string(s): s is a string other than "".
nonempty_string(s) if {
	is_string(s)
	s != ""
}

# as_array(x): x if it is an array, else [] (`some v in x` raises an error on
# anything that is not a collection).
as_array(x) := x if is_array(x) else := []

# is_digits(s): s is a non-empty string of ASCII digits.
is_digits(s) if {
	nonempty_string(s)
	trim(s, "0123456789") == ""
}

# digits_value(s): the number a digit string denotes, leading zeros allowed
# ("007" -> 7; regorus's to_number rejects leading zeros). Undefined beyond
# 15 significant digits (to_number fails on very long strings).
digits_value(s) := 0 if {
	is_digits(s)
	trim_left(s, "0") == ""
} else := to_number(t) if {
	is_digits(s)
	t := trim_left(s, "0")
	count(t) <= 15
}

# decimal_value(s): the number a decimal string ("9.8", "10", "07.5") denotes.
decimal_value(s) := digits_value(s) if {
	is_digits(s)
} else := n if {
	is_string(s)
	parts := split(s, ".")
	count(parts) == 2
	is_digits(parts[1])
	count(parts[1]) <= 15
	n := to_number(concat(".", [format_int(digits_value(parts[0]), 10), parts[1]]))
}

_hex_len := {"sha256": 64, "sha384": 96, "sha512": 128}

# is_hex(s, n): s is exactly n lowercase hex characters.
is_hex(s, n) if {
	is_string(s)
	count(s) == n
	trim(s, "0123456789abcdef") == ""
}

# is_digest(d): d is an OCI digest "sha256:<64 hex>" (or sha384/sha512).
is_digest(d) if {
	is_string(d)
	parts := split(d, ":")
	count(parts) == 2
	is_hex(parts[1], _hex_len[parts[0]])
}

# short_digest(d): "sha256:0123456789ab" (12 hex digits), for messages.
short_digest(d) := concat("", [parts[0], ":", substring(parts[1], 0, 12)]) if {
	is_digest(d)
	parts := split(d, ":")
} else := "(no digest)"

# image_digests: the digests whose evidence applies to this image:
# input.image.digest and, when a platform of an image index is judged, the
# index (input.image.index), whose signature covers the list naming this
# platform. Evidence bound to another platform of the index never counts:
# provgate judges each platform on its own (docs/policy-input.md).
image_digests contains d if {
	d := input.image.digest
	is_digest(d)
}

image_digests contains d if {
	d := input.image.index
	is_digest(d)
}

# ---------------------------------------------------------------------------
# Selecting evidence
# ---------------------------------------------------------------------------

# is_for_image(ev): the attestation or signature is bound to this image: its
# `subject` is one of image_digests and its signed content names that digest:
#   attestation:      a statement.subject[].digest[<alg>] is the hex of `subject`;
#   cosign signature: payload.critical.image["docker-manifest-digest"] == subject;
#   bundle message signature (payload null): provgate checked the digest itself.
# Evidence about any other digest never satisfies a requirement.
is_for_image(ev) if {
	ev.subject in image_digests
	_content_names_subject(ev)
}

_content_names_subject(ev) if {
	is_object(ev.statement)
	parts := split(ev.subject, ":")
	some s in as_array(ev.statement.subject)
	s.digest[parts[0]] == parts[1]
}

_content_names_subject(ev) if {
	not _has_key(ev, "statement")
	ev.payload.critical.image["docker-manifest-digest"] == ev.subject
}

_content_names_subject(ev) if {
	not _has_key(ev, "statement")
	ev.payload == null
}

# _has_key(o, k): the object o has the key k, whatever its value (false and
# null included); cheaper than building object.keys(o).
_has_key(o, k) if _ = o[k]

# image_attestations: the attestations for this image, whatever their type,
# whose signed statement carries the predicateType provgate reported.
image_attestations contains a if {
	some a in as_array(input.attestations)
	is_object(a)
	nonempty_string(a.predicateType)
	a.statement.predicateType == a.predicateType
	is_for_image(a)
}

# attestations_of(types): image_attestations whose predicateType is one of
# `types` (a set or array of exact URIs).
attestations_of(types) := {a |
	some a in image_attestations
	a.predicateType in types
}

# image_signatures: the signatures (cosign simple signing, or bundle message
# signatures) for this image.
image_signatures contains s if {
	some s in as_array(input.signatures)
	is_object(s)
	is_for_image(s)
}

# image_evidence: image_attestations and image_signatures together.
image_evidence := image_attestations | image_signatures

# ---------------------------------------------------------------------------
# Signers and transparency log
# ---------------------------------------------------------------------------

# is_keyless(ev): signed with a Fulcio certificate (an OIDC identity).
is_keyless(ev) if ev.signer.kind == "keyless"

# has_tlog_entry(ev): at least one transparency-log entry whose inclusion
# proof or inclusion promise (Rekor SET) provgate verified.
has_tlog_entry(ev) if {
	some e in as_array(ev.tlog)
	_tlog_backed(e)
}

_tlog_backed(e) if e.inclusionProof == true

_tlog_backed(e) if e.inclusionPromise == true

# signer_claim(ev, name): a Fulcio claim of a keyless signer by name
# (sourceRepositoryURI, githubWorkflowRepository, ...). Undefined for key
# signers and for absent or empty claims.
signer_claim(ev, name) := v if {
	is_keyless(ev)
	v := ev.signer.extensions[name]
	nonempty_string(v)
}

# signer_description(ev): who signed, for messages: the certificate subject,
# or "key <keyName>".
signer_description(ev) := ev.signer.subject if {
	is_keyless(ev)
	nonempty_string(ev.signer.subject)
} else := sprintf("key %s", [ev.signer.keyName]) if {
	ev.signer.kind == "key"
	nonempty_string(ev.signer.keyName)
} else := sprintf("authority %s", [ev.authority]) if {
	nonempty_string(ev.authority)
} else := "an unknown signer"

# describe(ev): "sha256:0123456789ab signed by <signer>", naming one piece of
# evidence in messages (ev.digest is the digest of the bundle or layer).
# Total: a message built from it never makes a deny rule undefined.
describe(ev) := sprintf("%s signed by %s", [_evidence_digest(ev), signer_description(ev)])

_evidence_digest(ev) := short_digest(ev.digest) if {
	is_string(ev.digest)
} else := "(no digest)"

# ---------------------------------------------------------------------------
# Time
# ---------------------------------------------------------------------------

ns_per_day := ((24 * 60) * 60) * 1000000000

# time_ns(s): an RFC 3339 date-time ("2026-11-25T10:00:00Z", with optional
# fraction of up to 9 digits and a Z or +hh:mm offset) in nanoseconds since
# the epoch. Undefined, never an error, for anything else: other types,
# malformed text, impossible dates (2026-02-29), years outside 1678..2261
# (the int64 nanosecond range).
time_ns(s) := time.parse_rfc3339_ns(s) if {
	is_string(s)
	count(s) >= 20
	count(s) <= 35
	_date_ok(substring(s, 0, 10))
	upper(substring(s, 10, 1)) == "T"
	_clock_ok(substring(s, 11, 8))
	_zone_ok(substring(s, 19, -1))
}

_date_ok(d) if {
	p := split(d, "-")
	count(p) == 3
	count(p[0]) == 4
	count(p[1]) == 2
	count(p[2]) == 2
	y := digits_value(p[0])
	m := digits_value(p[1])
	day := digits_value(p[2])
	y >= 1678
	y <= 2261
	m >= 1
	m <= 12
	day >= 1
	day <= _days_in_month(y, m)
}

_clock_ok(c) if {
	p := split(c, ":")
	count(p) == 3
	every x in p {
		count(x) == 2
	}
	digits_value(p[0]) <= 23
	digits_value(p[1]) <= 59
	digits_value(p[2]) <= 59
}

_zone_ok(z) if _offset_ok(z)

_zone_ok(z) if {
	startswith(z, ".")
	rest := trim_left(substring(z, 1, -1), "0123456789")
	digits := (count(z) - 1) - count(rest)
	digits >= 1
	digits <= 9
	_offset_ok(rest)
}

_offset_ok(o) if upper(o) == "Z"

_offset_ok(o) if {
	count(o) == 6
	substring(o, 0, 1) in {"+", "-"}
	substring(o, 3, 1) == ":"
	digits_value(substring(o, 1, 2)) <= 23
	digits_value(substring(o, 4, 2)) <= 59
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

# now_ns: input.now in nanoseconds. Undefined when input.now is missing or
# malformed, which makes every age undefined, so age requirements deny.
now_ns := time_ns(input.now)

# evidence_time_ns(ev): the verified signing time of the evidence: an RFC 3161
# timestamp or a Rekor integrated time. Undefined when time.source is "none"
# or the value is unusable. Statement content is never a trusted time.
evidence_time_ns(ev) := t if {
	ev.time.source in {"rfc3161", "rekor"}
	t := time_ns(ev.time.value)
}

# max_future_skew_ns: how far after input.now a verified time may lie before
# it is treated as unusable (5 minutes of clock skew).
max_future_skew_ns := (5 * 60) * 1000000000

# age_days(t): days (fractional) from the time t (in ns) to input.now.
age_days(t) := (now_ns - t) / ns_per_day

# format_days(d): a number of days for messages, rounded down: "12".
format_days(d) := sprintf("%d", [floor(d)])

# ---------------------------------------------------------------------------
# Contract parameters
# ---------------------------------------------------------------------------

# params: input.contract.parameters (contract.yaml defaults merged with the
# binding's overrides by provgate), or {} when absent or not an object.
params := p if {
	p := input.contract.parameters
	is_object(p)
} else := {}

# parameter_errors(kinds): one message per parameter that is missing, of the
# wrong kind, or unknown. `kinds` maps each parameter name to one of
#   "patterns": a non-empty list of allow-list patterns (see pattern_matches);
#   "strings":  a list (possibly empty) of non-empty strings;
#   "days":     a number >= 0;
#   "boolean":  true or false;
#   "string":   a non-empty string.
# A contract denies while this is non-empty: an empty allow-list or a typo in
# a binding is a configuration error, never "allow all" or a silent default.
parameter_errors(kinds) := {msg |
	some name, _ in kinds
	not name in object.keys(params)
	msg := sprintf("parameter %s is not set", [name])
} | {msg |
	some name, kind in kinds
	value := params[name]
	not _param_ok(kind, value)
	msg := sprintf("parameter %s must be %s, got %s", [name, _kind_text[kind], _short_json(value)])
} | {msg |
	some name, _ in params
	not name in object.keys(kinds)
	msg := sprintf("unknown parameter %s (%s)", [name, _known_text(kinds)])
}

_known_text(kinds) := "this contract takes none" if {
	count(kinds) == 0
} else := concat("", ["known: ", concat(", ", sort(object.keys(kinds)))])

_kind_text := {
	"patterns": "a non-empty list of patterns (exact strings, or with * wildcards)",
	"strings": "a list of non-empty strings",
	"days": "a number of days >= 0",
	"boolean": "true or false",
	"string": "a non-empty string",
}

_param_ok("patterns", v) if {
	is_array(v)
	count(v) > 0
	every p in v {
		valid_pattern(p)
	}
}

_param_ok("strings", v) if {
	is_array(v)
	every s in v {
		nonempty_string(s)
	}
}

_param_ok("days", v) if {
	is_number(v)
	v >= 0
}

_param_ok("boolean", v) if is_boolean(v)

_param_ok("string", v) if nonempty_string(v)

_short_json(v) := s if {
	j := json.marshal(v)
	count(j) <= 80
	s := j
} else := concat("", [substring(json.marshal(v), 0, 80), "…"])

# ---------------------------------------------------------------------------
# Allow-list patterns
# ---------------------------------------------------------------------------

# valid_pattern(p): p is a non-empty string whose only wildcard is a single
# `*` (no `**`, `?`, `[`, `{` or `\`, which glob.match would interpret).
valid_pattern(p) if {
	nonempty_string(p)
	not contains(p, "**")
	not _has_glob_meta(p)
}

_has_glob_meta(p) if {
	some c in ["?", "[", "]", "{", "}", "\\"]
	contains(p, c)
}

# pattern_matches(p, v): v matches the allow-list pattern p, compared
# case-insensitively. A pattern without `*` must equal v; otherwise each `*`
# matches any run of characters, `/` included, and the pattern is anchored at
# both ends: "https://github.com/acme/*" matches
# "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
# but not "https://github.com/acme-evil/app". Invalid patterns match nothing.
pattern_matches(p, v) if {
	valid_pattern(p)
	is_string(v)
	_wildcard_match(lower(p), lower(v))
}

# (p and v lower-cased; p valid.) Validating p once per match, not once per
# body, halves the cost of matches_any.
_wildcard_match(p, v) if {
	not contains(p, "*")
	p == v
}

_wildcard_match(p, v) if {
	contains(p, "*")
	glob.match(p, null, v)
}

# matches_any(v, patterns): v matches at least one pattern of a list or set.
matches_any(v, patterns) if {
	is_array(patterns)
	some p in patterns
	pattern_matches(p, v)
}

# ---------------------------------------------------------------------------
# SLSA provenance (v1 and v0.2)
# ---------------------------------------------------------------------------

slsa_provenance_v1 := "https://slsa.dev/provenance/v1"

slsa_provenance_v02 := "https://slsa.dev/provenance/v0.2"

# provenance: the SLSA provenance attestations (v1 and v0.2) for this image.
provenance := attestations_of({slsa_provenance_v1, slsa_provenance_v02})

# The readers below follow the declared predicateType, never the body's shape:
# a v1 type with a v0.2 body finds no builder id and is denied.

# builder_id(a): v1 runDetails.builder.id, v0.2 builder.id; undefined if empty.
builder_id(a) := id if {
	a.predicateType == slsa_provenance_v1
	id := a.statement.predicate.runDetails.builder.id
	nonempty_string(id)
}

builder_id(a) := id if {
	a.predicateType == slsa_provenance_v02
	id := a.statement.predicate.builder.id
	nonempty_string(id)
}

# build_type(a): v1 buildDefinition.buildType, v0.2 buildType; undefined if empty.
build_type(a) := t if {
	a.predicateType == slsa_provenance_v1
	t := a.statement.predicate.buildDefinition.buildType
	nonempty_string(t)
}

build_type(a) := t if {
	a.predicateType == slsa_provenance_v02
	t := a.statement.predicate.buildType
	nonempty_string(t)
}

# resolved_dependencies(a): the build's inputs, objects with `uri`, `digest`
# (a DigestSet) and optionally `name`: v1 buildDefinition.resolvedDependencies,
# v0.2 materials. Entries that are not objects are dropped; [] when absent.
resolved_dependencies(a) := [d |
	some d in a.statement.predicate.buildDefinition.resolvedDependencies
	is_object(d)
] if {
	a.predicateType == slsa_provenance_v1
	is_array(a.statement.predicate.buildDefinition.resolvedDependencies)
} else := [d |
	some d in a.statement.predicate.materials
	is_object(d)
] if {
	a.predicateType == slsa_provenance_v02
	is_array(a.statement.predicate.materials)
} else := []

# config_source(a): what initialised the build, as BuildKit records it,
# normalised to {"uri": string, "digest": object, "path": string} ("" and {}
# when absent): v1 externalParameters.configSource {uri, digest, path}, v0.2
# invocation.configSource {uri, digest, entryPoint}. Undefined when absent.
config_source(a) := _config_source(cs, "path") if {
	a.predicateType == slsa_provenance_v1
	cs := a.statement.predicate.buildDefinition.externalParameters.configSource
	is_object(cs)
}

config_source(a) := _config_source(cs, "entryPoint") if {
	a.predicateType == slsa_provenance_v02
	cs := a.statement.predicate.invocation.configSource
	is_object(cs)
}

_config_source(cs, path_field) := {
	"uri": _string_or_empty(object.get(cs, "uri", "")),
	"digest": _object_or_empty(object.get(cs, "digest", {})),
	"path": _string_or_empty(object.get(cs, path_field, "")),
}

_string_or_empty(x) := x if is_string(x) else := ""

_object_or_empty(x) := x if is_object(x) else := {}

# source_repositories(a): every source repository the provenance or its
# signer names, normalised with normalize_repo_uri:
#   - the keyless signer's Fulcio claim sourceRepositoryURI;
#   - v1 externalParameters.workflow.repository (GitHub Actions);
#   - the config source uri (BuildKit building a Git context);
#   - resolved dependencies whose uri starts with "git+" (the SLSA
#     convention for the source checkout, e.g. git+https://github.com/acme/app@refs/heads/main).
# Empty when none is recorded; contracts deny that.
source_repositories(a) := {normalize_repo_uri(u) | some u in _raw_sources(a)}

_raw_sources(a) := (({u | u := signer_claim(a, "sourceRepositoryURI")} | {u |
	a.predicateType == slsa_provenance_v1
	u := a.statement.predicate.buildDefinition.externalParameters.workflow.repository
	nonempty_string(u)
}) | {u |
	u := config_source(a).uri
	u != ""
}) | {u |
	some d in resolved_dependencies(a)
	u := d.uri
	is_string(u)
	startswith(u, "git+")
}

# normalize_repo_uri(u): a repository URI in a comparable form:
#   "git+https://github.com/acme/app@refs/heads/main" -> "https://github.com/acme/app"
#   "https://github.com/acme/app.git#refs/heads/main" -> "https://github.com/acme/app"
#   "git+ssh://git@github.com/acme/app.git"           -> "ssh://github.com/acme/app"
# It drops a "git+" prefix, a "#fragment", a "?query", user info, an "@ref"
# suffix, a trailing "/" and a trailing ".git".
normalize_repo_uri(u) := trim_suffix(trim_suffix(_drop_ref(s), "/"), ".git") if {
	s := split(split(trim_prefix(u, "git+"), "#")[0], "?")[0]
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
# Provenance dependencies: container images
# ---------------------------------------------------------------------------

# image_reference(dep): the image a dependency's uri names, normalised to
# "registry/repository" with Docker Hub defaults, and its version (tag or
# digest) or "": {"repository": "docker.io/library/alpine", "version": "3.20"}.
# Recognised forms: pkg:docker/<name>@<version>?... (BuildKit), pkg:oci/...,
# oci://<ref>, docker://<ref>. Undefined for anything else.
image_reference(dep) := {"repository": normalize_image_name(name), "version": version} if {
	u := dep.uri
	is_string(u)
	some prefix in ["pkg:docker/", "pkg:oci/", "oci://", "docker://"]
	startswith(u, prefix)
	ref := split(split(substring(u, count(prefix), -1), "?")[0], "#")[0]
	[name, version] := _split_version(ref)
	name != ""
}

# "<name>@<version>" (purl and digest references) or "<name>:<tag>".
_split_version(ref) := [_drop_tag(substring(ref, 0, i)), replace(replace(substring(ref, i + 1, -1), "%3A", ":"), "%3a", ":")] if {
	i := indexof(ref, "@")
	i > 0
} else := [_drop_tag(ref), _tag(ref)]

# "<name>:<tag>": the tag is after the last ":" of the last path segment
# (a ":" in the first segment is a registry port).
_tag(ref) := t if {
	parts := split(ref, "/")
	count(parts) > 1
	tail := parts[count(parts) - 1]
	contains(tail, ":")
	t := split(tail, ":")[1]
} else := t if {
	not contains(ref, "/")
	contains(ref, ":")
	t := split(ref, ":")[1]
} else := ""

_drop_tag(ref) := substring(ref, 0, (count(ref) - count(t)) - 1) if {
	t := _tag(ref)
	t != ""
} else := ref

# normalize_image_name(n): Docker Hub defaults applied, lower-cased:
# "alpine" -> "docker.io/library/alpine", "docker/dockerfile" ->
# "docker.io/docker/dockerfile", "ghcr.io/acme/base" unchanged.
normalize_image_name(n) := lower(concat("/", ["docker.io/library", n])) if {
	not contains(n, "/")
} else := lower(concat("/", ["docker.io", n])) if {
	first := split(n, "/")[0]
	not contains(first, ".")
	not contains(first, ":")
	first != "localhost"
} else := lower(n)

# image_dependency_digest(dep): the "sha256:<hex>" digest the provenance
# records for an image dependency: digest.sha256, or an "@sha256:..." version
# in the uri. Undefined when neither is present or the two disagree.
image_dependency_digest(dep) := d if {
	ds := _image_dep_digests(dep)
	count(ds) == 1
	some d in ds
}

_image_dep_digests(dep) := {concat("", ["sha256:", h]) |
	h := dep.digest.sha256
	is_hex(h, 64)
} | {v |
	v := image_reference(dep).version
	is_digest(v)
	startswith(v, "sha256:")
}

# ---------------------------------------------------------------------------
# Vulnerability scans
# ---------------------------------------------------------------------------

cosign_vuln_type := "https://cosign.sigstore.dev/attestation/vuln/v1"

intoto_vulns_types := {
	"https://in-toto.io/attestation/vulns",
	"https://in-toto.io/attestation/vulns/v0.1",
}

# vuln_scans: the vulnerability-scan attestations for this image.
vuln_scans := attestations_of(intoto_vulns_types | {cosign_vuln_type})

# severity_rank: ordering of normalised severities.
severity_rank := {"UNKNOWN": 0, "NEGLIGIBLE": 1, "LOW": 2, "MEDIUM": 3, "HIGH": 4, "CRITICAL": 5}

# normalize_severity(s): a scanner severity as CRITICAL, HIGH, MEDIUM, LOW,
# NEGLIGIBLE or UNKNOWN. Names in any case (Trivy "CRITICAL", Grype
# "Critical"; "moderate" -> MEDIUM, "important" -> HIGH, "none"/"info" ->
# NEGLIGIBLE) and CVSS base scores as numbers or decimal strings (>= 9.0
# CRITICAL, >= 7.0 HIGH, >= 4.0 MEDIUM, > 0 LOW, 0 NEGLIGIBLE); else UNKNOWN.
normalize_severity(s) := n if {
	is_string(s)
	n := _severity_names[upper(trim_space(s))]
} else := cvss_severity(x) if {
	is_string(s)
	x := decimal_value(trim_space(s))
} else := cvss_severity(s) if {
	is_number(s)
} else := "UNKNOWN"

_severity_names := {
	"CRITICAL": "CRITICAL", "HIGH": "HIGH", "IMPORTANT": "HIGH", "MEDIUM": "MEDIUM",
	"MODERATE": "MEDIUM", "LOW": "LOW", "NEGLIGIBLE": "NEGLIGIBLE", "NONE": "NEGLIGIBLE",
	"INFO": "NEGLIGIBLE", "UNKNOWN": "UNKNOWN",
}

# cvss_severity(x): the CVSS v3 qualitative rating of a base score.
cvss_severity(x) := "UNKNOWN" if {
	x > 10
} else := "CRITICAL" if {
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

# vuln_scan_format(a): how a scan attestation's report is encoded:
#   "in-toto": in-toto vulns predicate: scanner.result is a list of
#              {id, severity: [{method, score}]};
#   "trivy":   cosign vuln predicate whose scanner.result is a Trivy JSON
#              report (SchemaVersion, Results[].Vulnerabilities[]), as
#              `trivy image --format cosign-vuln` writes it;
#   "grype":   cosign vuln predicate whose scanner.result is a Grype JSON
#              report (matches[]).
# Undefined for anything else or a malformed report: a report that cannot be
# read proves nothing, and contracts do not count it.
vuln_scan_format(a) := "in-toto" if {
	a.predicateType in intoto_vulns_types
	r := a.statement.predicate.scanner.result
	is_array(r)
	every item in r {
		is_object(item)
	}
} else := "trivy" if {
	a.predicateType == cosign_vuln_type
	r := a.statement.predicate.scanner.result
	is_number(r.SchemaVersion)
	_trivy_results_ok(object.get(r, "Results", null))
} else := "grype" if {
	a.predicateType == cosign_vuln_type
	m := a.statement.predicate.scanner.result.matches
	is_array(m)
	every x in m {
		is_object(x.vulnerability)
	}
}

# Trivy omits Results when nothing was scanned and Vulnerabilities when a
# target has none; anything present must have the documented shape.
_trivy_results_ok(rs) if rs == null

_trivy_results_ok(rs) if {
	is_array(rs)
	every res in rs {
		is_object(res)
		_trivy_vulns_ok(object.get(res, "Vulnerabilities", null))
	}
}

_trivy_vulns_ok(vs) if vs == null

_trivy_vulns_ok(vs) if {
	is_array(vs)
	every v in vs {
		is_object(v)
	}
}

# vuln_findings(a): the findings of a readable scan, each normalised to
#   {"id": "CVE-2024-1234" (upper-cased; "(unnamed finding)" if none),
#    "ids": {the id and its aliases, upper-cased},
#    "severity": one of severity_rank, "package": purl, name or "",
#    "purl": package URL or ""}
# The empty set for a clean report; undefined when vuln_scan_format(a) is.
vuln_findings(a) := {f |
	some res in as_array(object.get(a.statement.predicate.scanner.result, "Results", []))
	some v in as_array(object.get(res, "Vulnerabilities", []))
	purl := _str(v, ["PkgIdentifier", "PURL"])
	f := _finding(
		_str(v, ["VulnerabilityID"]), set(),
		normalize_severity(object.get(v, "Severity", "")),
		_first_nonempty([purl, _str(v, ["PkgName"])]), purl,
	)
} if {
	vuln_scan_format(a) == "trivy"
} else := {f |
	some m in a.statement.predicate.scanner.result.matches
	purl := _str(m, ["artifact", "purl"])
	f := _finding(
		_str(m, ["vulnerability", "id"]),
		{id | some r in as_array(object.get(m, "relatedVulnerabilities", [])); id := r.id; nonempty_string(id)},
		normalize_severity(object.get(m.vulnerability, "severity", "")),
		_first_nonempty([purl, _str(m, ["artifact", "name"])]), purl,
	)
} if {
	vuln_scan_format(a) == "grype"
} else := {f |
	some v in a.statement.predicate.scanner.result
	f := _finding(_str(v, ["id"]), set(), _intoto_severity(v), "", "")
} if {
	vuln_scan_format(a) == "in-toto"
}

_finding(id, aliases, sev, pkg, purl) := {
	"id": upper(id),
	"ids": {upper(i) | some i in ({id} | aliases)},
	"severity": sev,
	"package": pkg,
	"purl": purl,
} if {
	id != ""
} else := {
	"id": "(unnamed finding)",
	"ids": set(),
	"severity": sev,
	"package": pkg,
	"purl": purl,
}

# in-toto vulns: the highest severity among severity[].score.
_intoto_severity(v) := max_severity([s.score | some s in as_array(object.get(v, "severity", []))])

# max_severity(l): the highest normalised severity among raw severities.
max_severity(l) := s if {
	ranks := {severity_rank[normalize_severity(x)] | some x in l}
	count(ranks) > 0
	some s, r in severity_rank
	r == max(ranks)
} else := "UNKNOWN"

# _str(x, path): the string at path inside the object x, else "".
_str(x, path) := s if {
	is_object(x)
	s := object.get(x, path, "")
	is_string(s)
} else := ""


_first_nonempty(l) := s if {
	ss := [x | some x in l; nonempty_string(x)]
	count(ss) > 0
	s := ss[0]
} else := ""

# scan_time_ns(a): when a scan's data was produced: the earlier of the
# verified signing time and the predicate's metadata.scanFinishedOn (an old
# scan signed again is as old as the scan). Undefined without a verified
# signing time: the report's own dates are signed content, not trusted time.
scan_time_ns(a) := min({t, e}) if {
	e := evidence_time_ns(a)
	t := time_ns(a.statement.predicate.metadata.scanFinishedOn)
} else := evidence_time_ns(a)

# ---------------------------------------------------------------------------
# OpenVEX
# ---------------------------------------------------------------------------

openvex_types := {
	"https://openvex.dev/ns",
	"https://openvex.dev/ns/v0.0.1",
	"https://openvex.dev/ns/v0.2.0",
}

# openvex_justifications: the justifications OpenVEX defines for not_affected.
openvex_justifications := {
	"component_not_present",
	"vulnerable_code_not_present",
	"vulnerable_code_not_in_execute_path",
	"vulnerable_code_cannot_be_controlled_by_adversary",
	"inline_mitigations_already_exist",
}

# vex_statements: the statements of the OpenVEX attestations for this image
# that speak about this image, each normalised to
#   {"ids": {vulnerability name, @id and aliases, upper-cased},
#    "status": "...", "waiver": bool, "subcomponents": {purls without
#    qualifiers}, "time_ns": number}
# A statement speaks about this image when it lists no products (it then
# speaks of the attestation subject) or when one of its products names one of
# image_digests (the hex appears in its @id, identifiers or hashes). OpenVEX
# v0.2.0 (objects, product subcomponents) and v0.0.1 (strings, statement
# subcomponents) are both read. "waiver" is true for status "fixed" and for
# "not_affected" with a known justification or an impact_statement.
vex_statements contains s if {
	some a in attestations_of(openvex_types)
	doc := a.statement.predicate
	some st in as_array(doc.statements)
	is_object(st)
	some subs in _vex_scopes(st)
	ids := _vex_ids(object.get(st, "vulnerability", null))
	count(ids) > 0
	s := {
		"ids": ids,
		"status": _str(st, ["status"]),
		"waiver": _vex_waiver(st),
		"subcomponents": subs,
		"time_ns": _vex_time(st, doc),
	}
}

# _vex_scopes(st): for each way st applies to the image, the subcomponents it
# is limited to (empty: the whole image).
_vex_scopes(st) := {_purls(object.get(st, "subcomponents", [])) |
	object.get(st, "products", []) in {[], null}
} | {_purls(array.concat(_product_subcomponents(p), as_array(object.get(st, "subcomponents", [])))) |
	some p in as_array(object.get(st, "products", []))
	_product_names_image(p)
}

_product_subcomponents(p) := as_array(object.get(p, "subcomponents", [])) if is_object(p) else := []

_product_names_image(p) if {
	some s in _product_strings(p)
	some d in image_digests
	contains(s, split(d, ":")[1])
}

_product_strings(p) := {p} if is_string(p)

_product_strings(p) := {s |
	some s in array.concat(
		[object.get(p, "@id", "")],
		array.concat(_values(object.get(p, "identifiers", {})), _values(object.get(p, "hashes", {}))),
	)
	is_string(s)
} if is_object(p)

_values(o) := [v | some v in o] if is_object(o) else := []

_purls(subs) := {purl_base(c) | some c in as_array(subs); nonempty_string(c)} | {purl_base(c["@id"]) |
	some c in as_array(subs)
	is_object(c)
	nonempty_string(c["@id"])
}

# purl_base(p): a package URL without qualifiers and subpath, lower-cased:
# "pkg:apk/alpine/expat@2.6.2-r0?arch=x86_64" -> "pkg:apk/alpine/expat@2.6.2-r0".
purl_base(p) := lower(split(split(p, "?")[0], "#")[0])

_vex_ids(v) := {upper(v)} if {
	nonempty_string(v)
} else := {upper(x) |
	some x in array.concat([object.get(v, "name", ""), object.get(v, "@id", "")], as_array(object.get(v, "aliases", [])))
	nonempty_string(x)
} if {
	is_object(v)
} else := set()

_vex_waiver(st) := true if {
	st.status == "fixed"
} else := true if {
	st.status == "not_affected"
	st.justification in openvex_justifications
} else := true if {
	st.status == "not_affected"
	nonempty_string(st.impact_statement)
} else := false

_vex_time(st, doc) := t if {
	t := time_ns(st.timestamp)
} else := t if {
	t := time_ns(st.last_updated)
} else := t if {
	t := time_ns(doc.timestamp)
} else := 0

# vex_waives(f): OpenVEX waives the finding f (from vuln_findings): among the
# statements about f, the newest all waive it ("fixed", or "not_affected"
# with a justification or an impact statement). An "affected" or
# "under_investigation" statement at least as new wins, and so does an equally
# new conflicting one (fail closed). A statement limited to subcomponents
# matches only findings whose package purl is one of them (a subcomponent
# without a version matches every version).
vex_waives(f) if {
	stmts := {s |
		some id in f.ids
		some s in object.get(_vex_by_id, id, [])
		_vex_component_matches(s, f)
	}
	count(stmts) > 0
	newest := max({s.time_ns | some s in stmts})
	every s in stmts {
		_waiver_or_older(s, newest)
	}
}

_waiver_or_older(s, newest) if s.time_ns < newest

_waiver_or_older(s, newest) if {
	s.time_ns == newest
	s.waiver == true
}

# _vex_by_id: vex_statements indexed by each of their ids (a finding looks up
# its ids instead of scanning every statement).
_vex_by_id := {id: [s | some s in vex_statements; id in s.ids] | some s0 in vex_statements; some id in s0.ids}

_vex_component_matches(s, _) if count(s.subcomponents) == 0

_vex_component_matches(s, f) if {
	nonempty_string(f.purl)
	some c in s.subcomponents
	_purl_matches(c, purl_base(f.purl))
}

_purl_matches(c, p) if c == p

_purl_matches(c, p) if {
	not contains(c, "@")
	split(p, "@")[0] == c
}
