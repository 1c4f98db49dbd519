//! The report for people: a table grouped by namespace, the summary, and
//! the same for an impact preview.

use std::collections::BTreeMap;

use super::{Change, Impact, Report};

/// The human-readable report: grouped by namespace, then the summary.
pub fn table(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let mut ns: Option<&str> = None;
    for w in &r.workloads {
        if ns != Some(w.namespace.as_str()) {
            ns = Some(&w.namespace);
            if w.namespace.is_empty() {
                let _ = writeln!(s, "(no namespace)");
            } else {
                let _ = writeln!(s, "namespace {}", w.namespace);
            }
        }
        let status = if w.unreadable.is_some() {
            "UNREADABLE"
        } else if w.compliant {
            "compliant"
        } else {
            "NON-COMPLIANT"
        };
        let team = w
            .team
            .as_deref()
            .map(|t| format!(" team={t}"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  {}/{}{team}: {status} (admission: {})",
            w.kind,
            w.name,
            w.outcome.as_str()
        );
        if let Some(why) = &w.unreadable {
            let _ = writeln!(s, "    error: {why}");
        }
        for i in &w.images {
            let _ = writeln!(
                s,
                "    {} {} {}",
                i.container.as_deref().unwrap_or("-"),
                i.image,
                i.digest.as_deref().unwrap_or("(no digest)")
            );
            for c in &i.contracts {
                if c.verdict != "pass" {
                    let _ = writeln!(
                        s,
                        "      {} {} ({}): {}",
                        c.name, c.version, c.mode, c.verdict
                    );
                    for v in c.deny.iter().chain(&c.warn) {
                        let _ = writeln!(
                            s,
                            "        - {}",
                            crate::respond::wording::violation_text(v)
                        );
                    }
                    if let Some(e) = &c.error {
                        let _ = writeln!(s, "        - {e}");
                    }
                }
            }
            if let Some(e) = &i.error {
                let _ = writeln!(s, "      error: {}", e.message);
            }
            if i.unmatched {
                let _ = writeln!(s, "      no binding covers this image");
            }
        }
    }
    s.push_str(&summary_text(r));
    s
}

/// "X of Y workloads compliant", overall and per team.
pub fn summary_text(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let t = &r.summary.total;
    let _ = writeln!(
        s,
        "\n{} of {} workloads compliant; {} would be denied by admission now ({} distinct digests)",
        t.compliant, t.workloads, t.would_deny, r.summary.digests
    );
    if t.unreadable > 0 {
        let _ = writeln!(
            s,
            "  {} unreadable (not judged, not compliant): fix the objects or the input",
            t.unreadable
        );
    }
    if !r.summary.excluded.is_empty() {
        let list: Vec<String> = r
            .summary
            .excluded
            .iter()
            .map(|(ns, n)| format!("{ns} ({n})"))
            .collect();
        let _ = writeln!(
            s,
            "  not judged, exempt from admission by report.namespaceSelector: {}",
            list.join(", ")
        );
    }
    for (team, c) in &r.summary.by_team {
        let name = if team.is_empty() {
            format!("(no {} label)", r.team_label)
        } else {
            team.clone()
        };
        let _ = writeln!(
            s,
            "  team {name}: {} of {} compliant, {} would be denied",
            c.compliant, c.workloads, c.would_deny
        );
    }
    s
}

/// The impact, for people.
pub fn impact_table(i: &Impact) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let section = |s: &mut String, title: &str, list: &[Change]| {
        if list.is_empty() {
            return;
        }
        let _ = writeln!(s, "{title} ({}):", list.len());
        for c in list {
            let team = c
                .team
                .as_deref()
                .map(|t| format!(" team={t}"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "  {}{team}: {} -> {}",
                c.workload,
                c.before.as_str(),
                c.after.as_str()
            );
            for r in &c.reasons {
                let _ = writeln!(s, "    - {r}");
            }
        }
    };
    section(&mut s, "would newly be DENIED", &i.newly_denied);
    section(&mut s, "would newly be warned", &i.newly_warned);
    section(&mut s, "would improve", &i.improved);
    s.push_str(&impact_summary_text(i));
    s
}

/// The impact in a few lines: the totals, then per team.
pub fn impact_summary_text(i: &Impact) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} workloads compared: {} newly denied, {} newly warned, {} improved",
        i.workloads,
        i.newly_denied.len(),
        i.newly_warned.len(),
        i.improved.len()
    );
    // Per team: (newly denied, newly warned, improved).
    let mut teams: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for (list, slot) in [(&i.newly_denied, 0), (&i.newly_warned, 1), (&i.improved, 2)] {
        for c in list {
            let e = teams.entry(c.team.as_deref().unwrap_or("")).or_default();
            match slot {
                0 => e.0 += 1,
                1 => e.1 += 1,
                _ => e.2 += 1,
            }
        }
    }
    for (team, (d, w, b)) in teams {
        let name = if team.is_empty() { "(no team)" } else { team };
        let _ = writeln!(
            s,
            "  team {name}: {d} newly denied, {w} newly warned, {b} improved"
        );
    }
    s
}
