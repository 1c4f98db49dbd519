# vuln-threshold: a fresh vulnerability scan without blocking findings.
#
# - vuln-scan-present: a vulnerability-scan attestation for the image digest
#   (cosign https://cosign.sigstore.dev/attestation/vuln/v1 carrying a Trivy
#   or Grype JSON report, or in-toto https://in-toto.io/attestation/vulns and
#   /v0.1) in a format the library reads.
# - vuln-scan-fresh: at least one readable scan is at most maxAgeDays old.
#   A scan's time is the earlier of its verified signing time (RFC 3161 or
#   Rekor) and the report's scanFinishedOn; a scan without a trusted time, or
#   dated more than 5 minutes after input.now, is not fresh.
# - vuln-severity-threshold: no fresh scan reports a finding at or above
#   `severity` that OpenVEX does not waive. Findings of every fresh scan
#   count (two scanners: the stricter wins); stale scans are ignored. A
#   finding is waived by an OpenVEX attestation for this image whose newest
#   statement about it says not_affected (with a justification or an impact
#   statement) or fixed (see lib.vex_waives).
package provgate.contract

import data.provgate.lib

# Rule values of the library are imported by path: `lib.<rule>` would make
# regorus compute the whole data.provgate.lib document, every rule of the
# library, on each evaluation (half the time of slsa-provenance over
# docs/examples/policy-input.json). Functions are called as lib.f(x).
import data.provgate.lib.max_future_skew_ns
import data.provgate.lib.now_ns
import data.provgate.lib.params
import data.provgate.lib.severity_rank
import data.provgate.lib.vuln_scans

parameter_kinds := {"maxAgeDays": "days", "severity": "string"}

thresholds := {"low", "medium", "high", "critical"}

parameter_errors := lib.parameter_errors(parameter_kinds) | {msg |
	s := params.severity
	lib.nonempty_string(s)
	not lower(s) in thresholds
	msg := sprintf("parameter severity must be one of low, medium, high, critical, got %v", [s])
}

params_ok if count(parameter_errors) == 0

threshold := upper(s) if {
	s := params.severity
	is_string(s)
}

threshold_rank := severity_rank[threshold]

deny contains lib.violation(
	sprintf("contract misconfigured: %s", [msg]),
	"vuln-threshold-parameters",
	"the SecOps owner of the binding must fix the vuln-threshold parameters (see policies/README.md)",
) if {
	some msg in parameter_errors
}

scan_fix := "scan the pushed digest in CI and attest the report, e.g. `trivy image --format cosign-vuln --output vuln.json IMAGE@DIGEST` then `cosign attest --type vuln --predicate vuln.json IMAGE@DIGEST`"

# --- vuln-scan-present -----------------------------------------------------------

readable := {a | some a in vuln_scans; lib.vuln_scan_format(a)}

deny contains lib.violation(
	"no vulnerability-scan attestation (cosign vuln or in-toto vulns) for this image digest from a trusted signer",
	"vuln-scan-present",
	scan_fix,
) if {
	count(vuln_scans) == 0
}

deny contains lib.violation(
	sprintf("%d vulnerability-scan attestation(s) for this image digest, but none in a readable format (Trivy or Grype JSON in a cosign vuln predicate, or an in-toto vulns predicate)", [count(vuln_scans)]),
	"vuln-scan-present",
	scan_fix,
) if {
	count(vuln_scans) > 0
	count(readable) == 0
}

# --- vuln-scan-fresh ---------------------------------------------------------------

# usable_time_ns(a): the scan's time, unless it lies in the future.
usable_time_ns(a) := t if {
	t := lib.scan_time_ns(a)
	t - now_ns <= max_future_skew_ns
}

fresh := {a |
	params_ok
	some a in readable
	lib.age_days(usable_time_ns(a)) <= params.maxAgeDays
}

rescan_fix := "rescan the digest and attest the new report (schedule a daily scan of deployed images, e.g. a workflow running `trivy image --format cosign-vuln` and `cosign attest --type vuln`)"

deny contains lib.violation(
	"the policy input has no valid `now`, so no scan can be judged fresh",
	"vuln-scan-fresh",
	"report this to the provgate operators: provgate always sets input.now",
) if {
	not now_ns
}

deny contains lib.violation(
	sprintf("the newest vulnerability scan of this image digest is %s days old, more than maxAgeDays (%v)", [lib.format_days(lib.age_days(newest)), params.maxAgeDays]),
	"vuln-scan-fresh",
	rescan_fix,
) if {
	params_ok
	count(readable) > 0
	count(fresh) == 0
	times := {t | some a in readable; t := usable_time_ns(a)}
	count(times) > 0
	newest := max(times)
}

deny contains lib.violation(
	"no vulnerability scan of this image digest has a trusted time (an RFC 3161 timestamp or a Rekor entry, not in the future)",
	"vuln-scan-fresh",
	concat(" ", [rescan_fix, "with a signer that records the scan in the Rekor transparency log"]),
) if {
	params_ok
	now_ns
	count(readable) > 0
	count({t | some a in readable; t := usable_time_ns(a)}) == 0
}

# --- vuln-severity-threshold -----------------------------------------------------

blocking := {f |
	params_ok
	some a in fresh
	some f in lib.vuln_findings(a)
	severity_rank[f.severity] >= threshold_rank
	not lib.vex_waives(f)
}

# finding_text(f): "CVE-2024-45491 (expat@2.6.2-r0, CRITICAL)".
finding_text(f) := sprintf("%s (%s, %s)", [f.id, pkg, f.severity]) if {
	pkg := package_label(f)
	pkg != ""
} else := sprintf("%s (%s)", [f.id, f.severity])

package_label(f) := b if {
	lib.nonempty_string(f.purl)
	parts := split(lib.purl_base(f.purl), "/")
	b := parts[count(parts) - 1]
} else := f.package

blocking_texts := sort({finding_text(f) | some f in blocking})

noun := "vulnerability" if count(blocking_texts) == 1 else := "vulnerabilities"

max_listed := 10

listed := concat(", ", array.slice(blocking_texts, 0, max_listed))

more := sprintf(" and %d more", [count(blocking_texts) - max_listed]) if {
	count(blocking_texts) > max_listed
} else := ""

deny contains lib.violation(
	sprintf("%d %s at or above %s without an OpenVEX waiver: %s%s", [count(blocking_texts), noun, threshold, listed, more]),
	"vuln-severity-threshold",
	"update the affected packages (rebuild on a patched base image), then rescan and attest the new report; for a vulnerability that does not affect the image, attest an OpenVEX statement for the digest (`vexctl create` then `vexctl attest --attach --sign`) with status not_affected and a justification, or fixed",
) if {
	count(blocking_texts) > 0
}
