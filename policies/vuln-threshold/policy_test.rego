# Tests of vuln-threshold (inputs bound locally before `with input as`, see
# lib/provgate_test.rego).
package provgate.vuln_threshold_test

import data.provgate.contract

results(doc) := r if {
	r := contract.deny with input as doc
}

ids(doc) := {v.requirement | some v in results(doc)}

msgs(doc) := {v.msg | some v in results(doc)}

with_attestations(doc, atts) := object.union(doc, {"attestations": atts})

with_params(doc, ps) := object.union(doc, {"contract": {"parameters": ps}})

clean := data.testdata.trivy_clean

critical := data.testdata.trivy_critical

scan := critical.attestations[0]

vexed := data.testdata.trivy_critical_vex

vex := vexed.attestations[1]

expat := scan.statement.predicate.scanner.result.Results[0].Vulnerabilities[0]

# A Trivy scan of the image with these vulnerabilities.
trivy_with(vulns) := object.union(scan, {"statement": {"predicate": {"scanner": {"result": {"Results": [{"Target": "ghcr.io/acme/payments-api (alpine 3.20.3)", "Class": "os-pkgs", "Type": "alpine", "Vulnerabilities": vulns}]}}}}})

# A copy of attestation `a` signed (and scanned) at time t.
at_time(a, t) := object.union(a, {"time": {"value": t}, "statement": {"predicate": {"metadata": {"scanFinishedOn": t}}}})

# --- vuln-scan-present ---------------------------------------------------------------

test_clean_trivy_scan_passes if {
	doc := clean
	count(results(doc)) == 0
}

test_no_scan_denies if {
	doc := data.testdata.trivy_clean
	doc2 := with_attestations(doc, [doc.attestations[1]])
	ids(doc2) == {"vuln-scan-present"}
	msgs(doc2) == {"no vulnerability-scan attestation (cosign vuln or in-toto vulns) for this image digest from a trusted signer"}
}

test_sbom_or_unknown_type_is_not_a_scan if {
	a := object.union(scan, {"predicateType": "https://cyclonedx.org/bom", "statement": {"predicateType": "https://cyclonedx.org/bom"}})
	b := object.union(scan, {"predicateType": "https://example.com/vulns/v2", "statement": {"predicateType": "https://example.com/vulns/v2"}})
	doc := with_attestations(critical, [a, b])
	ids(doc) == {"vuln-scan-present"}
}

test_scan_for_another_digest_does_not_count if {
	a := object.union(clean.attestations[0], {"subject": "sha256:0b7f3c9a1d2e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f90"})
	doc := with_attestations(clean, [a])
	ids(doc) == {"vuln-scan-present"}
}

test_unreadable_report_denies if {
	a := object.union(scan, {"statement": {"predicate": {"scanner": {"result": "see https://scanner.acme.example/reports/118"}}}})
	doc := with_attestations(critical, [a])
	ids(doc) == {"vuln-scan-present"}
	b := object.union(scan, {"statement": {"predicate": {"scanner": {"result": {"Results": [{"Vulnerabilities": ["CVE-2024-45491"]}]}}}}})
	doc2 := with_attestations(critical, [b])
	ids(doc2) == {"vuln-scan-present"}
}

# --- vuln-scan-fresh -------------------------------------------------------------------

test_stale_scan_denies if {
	doc := with_attestations(clean, [at_time(clean.attestations[0], "2026-11-10T09:12:30Z")])
	ids(doc) == {"vuln-scan-fresh"}
	msgs(doc) == {"the newest vulnerability scan of this image digest is 15 days old, more than maxAgeDays (7)"}
}

test_old_report_resigned_is_still_old if {
	# Signed yesterday, but the report says the scan finished 20 days ago.
	a := object.union(clean.attestations[0], {"statement": {"predicate": {"metadata": {"scanFinishedOn": "2026-11-05T09:00:00Z"}}}})
	doc := with_attestations(clean, [a])
	ids(doc) == {"vuln-scan-fresh"}
}

test_max_age_parameter if {
	doc := with_attestations(clean, [at_time(clean.attestations[0], "2026-11-10T09:12:30Z")])
	doc2 := with_params(doc, {"maxAgeDays": 30})
	count(results(doc2)) == 0
}

test_one_fresh_scan_is_enough if {
	old := at_time(clean.attestations[0], "2026-10-01T09:12:30Z")
	doc := with_attestations(clean, [old, clean.attestations[0]])
	count(results(doc)) == 0
}

test_scan_without_trusted_time_is_not_fresh if {
	a := object.union(clean.attestations[0], {"time": {"source": "none", "value": null}, "tlog": []})
	doc := with_attestations(clean, [a])
	ids(doc) == {"vuln-scan-fresh"}
	msgs(doc) == {"no vulnerability scan of this image digest has a trusted time (an RFC 3161 timestamp or a Rekor entry, not in the future)"}
}

test_future_dated_scan_is_not_fresh if {
	a := at_time(clean.attestations[0], "2026-12-25T10:00:00Z")
	doc := with_attestations(clean, [a])
	ids(doc) == {"vuln-scan-fresh"}
}

test_invalid_now_denies if {
	doc := object.union(clean, {"now": "25/11/2026"})
	ids(doc) == {"vuln-scan-fresh"}
	doc2 := json.remove(clean, ["now"])
	ids(doc2) == {"vuln-scan-fresh"}
}

test_stale_scan_findings_are_ignored if {
	# A stale scan with a critical finding next to a fresh clean one.
	old := at_time(scan, "2026-10-01T09:12:30Z")
	doc := with_attestations(clean, [old, clean.attestations[0]])
	count(results(doc)) == 0
}

# --- vuln-severity-threshold -----------------------------------------------------------

test_critical_finding_denies if {
	doc := critical
	ids(doc) == {"vuln-severity-threshold"}
	some v in results(doc)
	v.msg == "1 vulnerability at or above CRITICAL without an OpenVEX waiver: CVE-2024-45491 (expat@2.6.2-r0, CRITICAL)"
	contains(v.fix, "vexctl")
}

test_threshold_parameter if {
	doc := with_params(critical, {"severity": "medium"})
	msgs(doc) == {"2 vulnerabilities at or above MEDIUM without an OpenVEX waiver: CVE-2023-42363 (busybox@1.36.1-r29, MEDIUM), CVE-2024-45491 (expat@2.6.2-r0, CRITICAL)"}
	doc2 := with_params(data.testdata.grype_high, {"severity": "High"})
	ids(doc2) == {"vuln-severity-threshold"}
}

test_grype_high_below_critical_passes if {
	doc := data.testdata.grype_high
	count(results(doc)) == 0
}

test_intoto_vulns_cvss_scores if {
	doc := data.testdata.intoto_vulns
	msgs(doc) == {"1 vulnerability at or above CRITICAL without an OpenVEX waiver: CVE-2024-45491 (CRITICAL)"}
}

test_vex_not_affected_waives if {
	doc := vexed
	count(results(doc)) == 0
}

test_vex_for_another_vulnerability_does_not_waive if {
	v := object.union(vex, {"statement": {"predicate": {"statements": [object.union(vex.statement.predicate.statements[0], {"vulnerability": {"name": "CVE-2024-45492"}})]}}})
	doc := with_attestations(vexed, [scan, v])
	ids(doc) == {"vuln-severity-threshold"}
}

test_vex_affected_does_not_waive if {
	st := json.remove(object.union(vex.statement.predicate.statements[0], {"status": "affected", "action_statement": "upgrade expat"}), ["justification", "impact_statement"])
	v := object.union(vex, {"statement": {"predicate": {"statements": [st]}}})
	doc := with_attestations(vexed, [scan, v])
	ids(doc) == {"vuln-severity-threshold"}
}

test_vex_for_another_image_does_not_waive if {
	other := "sha256:0b7f3c9a1d2e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f90"
	v := object.union(vex, {"subject": other, "statement": {"subject": [{"name": "ghcr.io/acme/payments-api", "digest": {"sha256": substring(other, 7, -1)}}]}})
	doc := with_attestations(vexed, [scan, v])
	ids(doc) == {"vuln-severity-threshold"}
}

test_findings_of_all_fresh_scans_count if {
	doc := with_attestations(critical, [clean.attestations[0], scan])
	ids(doc) == {"vuln-severity-threshold"}
}

test_many_findings_are_summarised if {
	vulns := [object.union(expat, {"VulnerabilityID": sprintf("CVE-2024-%d", [10000 + i])}) | some i in numbers.range(1, 12)]
	doc := with_attestations(critical, [trivy_with(vulns)])
	some v in results(doc)
	startswith(v.msg, "12 vulnerabilities at or above CRITICAL without an OpenVEX waiver: CVE-2024-10001 (expat@2.6.2-r0, CRITICAL), ")
	endswith(v.msg, " and 2 more")
}

test_hostile_findings_deny_without_error if {
	vulns := [{"VulnerabilityID": 7, "Severity": ["CRITICAL"]}, {"Severity": "CRITICAL", "PkgIdentifier": "x"}, {}]
	doc := with_attestations(critical, [trivy_with(vulns)])
	ids(doc) == {"vuln-severity-threshold"}
	msgs(doc) == {"1 vulnerability at or above CRITICAL without an OpenVEX waiver: (unnamed finding) (CRITICAL)"}
}

# --- parameters ---------------------------------------------------------------------------

test_parameter_errors_deny if {
	every ps in [{"severity": "severe"}, {"severity": 9}, {"maxAgeDays": -1}, {"maxAgeDays": "7d"}, {"maxAge": 7}] {
		doc := with_params(clean, ps)
		ids(doc) == {"vuln-threshold-parameters"}
	}
}
