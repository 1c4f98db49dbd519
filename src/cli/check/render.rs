//! What `check` prints: the table (coloured only for a terminal that
//! wants it) and the GitHub Actions job summary.

use crate::engine::decision::Outcome;
use crate::policy::Violation;
use crate::respond::json::{ContractReport, GateResponse, ImageReport, ImageStatus};

/// Whether to colour output for `stream`: a terminal, and neither
/// `NO_COLOR` nor `TERM=dumb` (anstream's rules, which also honour
/// `CLICOLOR` and `CLICOLOR_FORCE`).
pub(crate) fn color_for<S: std::io::Write + anstream::stream::RawStream>(stream: &S) -> bool {
    !matches!(
        anstream::AutoStream::choice(stream),
        anstream::ColorChoice::Never
    )
}

/// How to render the table.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    /// ANSI colours.
    pub color: bool,
    /// `--allow-unverified` was given.
    pub allow_unverified: bool,
}

impl Style {
    fn paint(&self, style: anstyle::Style, text: &str) -> String {
        if self.color {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_owned()
        }
    }
}

const GREEN: anstyle::Style = anstyle::AnsiColor::Green.on_default().bold();
const YELLOW: anstyle::Style = anstyle::AnsiColor::Yellow.on_default().bold();
const RED: anstyle::Style = anstyle::AnsiColor::Red.on_default().bold();

/// The header word of one image.
fn image_word(i: &ImageReport) -> (&'static str, anstyle::Style) {
    match (i.outcome, i.status) {
        (Outcome::Deny, _) => ("DENIED", RED),
        (_, ImageStatus::Unverified) => ("ALLOWED, NOT VERIFIED", YELLOW),
        (Outcome::Warn, _) => ("ALLOWED WITH WARNINGS", YELLOW),
        (Outcome::Allow, _) => ("ALLOWED", GREEN),
    }
}

/// The prominent line of an image that was not (fully) checked.
fn not_verified_line(i: &ImageReport) -> Option<String> {
    if !matches!(i.status, ImageStatus::Unverified | ImageStatus::Error) {
        return None;
    }
    if i.error.is_some() {
        let why = if i.reference.is_none() {
            "the image reference is invalid"
        } else {
            "its evidence could not be fetched (error above)"
        };
        return Some(format!(
            "NOTHING VERIFIED: {why}, so no contract judged this image"
        ));
    }
    let failed: Vec<&str> = i
        .contracts
        .iter()
        .filter(|c| c.verdict == "error")
        .map(|c| c.name.as_str())
        .collect();
    (!failed.is_empty()).then(|| {
        format!(
            "NOT FULLY VERIFIED: contract{} {} could not be evaluated (error above)",
            if failed.len() == 1 { "" } else { "s" },
            failed.join(", ")
        )
    })
}

/// The run's closing lines about images that were not (fully) checked;
/// empty when every image was.
pub(super) fn unverified_lines(r: &GateResponse, allow_unverified: bool) -> Vec<String> {
    let n = r.images.len();
    let images = |k: usize| format!("{k} of {n} image{}", if n == 1 { "" } else { "s" });
    let unverified = r
        .images
        .iter()
        .filter(|i| i.status == ImageStatus::Unverified)
        .count();
    let errors = r
        .images
        .iter()
        .filter(|i| i.status == ImageStatus::Error)
        .count();
    let mut out = Vec::new();
    if errors > 0 {
        out.push(format!(
            "NOT CHECKED: {} could not be checked (denied, fail closed); exit 1",
            images(errors)
        ));
    }
    if unverified > 0 {
        let tail = if allow_unverified {
            "accepted because of --allow-unverified"
        } else {
            "exit 1; --allow-unverified accepts this"
        };
        out.push(format!(
            "NOTHING VERIFIED: {} allowed only because no bound contract enforces, \
             although {} not verified; {tail}",
            images(unverified),
            if unverified == 1 {
                "it was"
            } else {
                "they were"
            },
        ));
    }
    out
}

/// A violation for the contract lines: message and requirement, and the
/// fix only when no admission line below already carries it.
fn violation_line(i: &ImageReport, v: &Violation) -> (String, Option<String>) {
    let mut s = v.msg.clone();
    if let Some(r) = &v.requirement {
        s.push_str(&format!(" (requirement {r})"));
    }
    let fix = v.fix.as_ref().filter(|f| {
        !i.denials
            .iter()
            .chain(i.warnings.iter())
            .any(|l| l.contains(f.as_str()))
    });
    (s, fix.cloned())
}

/// The human-readable table, without colour.
pub fn table(r: &GateResponse) -> String {
    render(r, Style::default())
}

/// The human-readable table.
pub fn render(r: &GateResponse, style: Style) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for i in &r.images {
        image_lines(&mut s, i, &style);
        s.push('\n');
    }
    let denied = r
        .images
        .iter()
        .filter(|i| i.outcome == Outcome::Deny)
        .count();
    let (word, colour) = match r.outcome {
        Outcome::Deny => ("DENIED", RED),
        _ if r.images.iter().any(|i| i.status == ImageStatus::Unverified) => {
            ("ALLOWED, NOT VERIFIED", YELLOW)
        }
        Outcome::Warn => ("ALLOWED WITH WARNINGS", YELLOW),
        Outcome::Allow => ("ALLOWED", GREEN),
    };
    let _ = writeln!(
        s,
        "{}: {denied} of {} image{} denied",
        style.paint(colour, word),
        r.images.len(),
        if r.images.len() == 1 { "" } else { "s" }
    );
    for line in unverified_lines(r, style.allow_unverified) {
        let _ = writeln!(s, "{}", style.paint(RED, &line));
    }
    s
}

/// One image's block of the table.
fn image_lines(s: &mut String, i: &ImageReport, style: &Style) {
    use std::fmt::Write as _;
    let (word, colour) = image_word(i);
    let _ = writeln!(s, "{}  {}", style.paint(colour, word), i.image);
    if let Some(reference) = &i.reference
        && reference != &i.image
    {
        let _ = writeln!(s, "  reference  {reference}");
    }
    if let Some(d) = &i.digest {
        let _ = writeln!(s, "  digest     {d}");
    }
    for p in &i.platforms {
        let _ = writeln!(s, "  platform   {} {}", p.platform, p.digest);
    }
    if let Some(e) = &i.error {
        let _ = writeln!(s, "  error      {} ({})", e.message, e.class);
    }
    if let Some(d) = &i.degraded {
        let _ = writeln!(s, "  degraded   {d}");
    }
    if let Some(line) = not_verified_line(i) {
        let _ = writeln!(s, "  {}", style.paint(RED, &line));
    }
    if i.unmatched {
        let _ = writeln!(s, "  bindings   none cover this image");
    }
    if !i.evidence.is_empty() || !i.rejected.is_empty() {
        let _ = writeln!(
            s,
            "  evidence   {} verified, {} rejected",
            i.evidence.len(),
            i.rejected.len()
        );
    } else if i.error.is_some() {
        let _ = writeln!(s, "  evidence   none (not fetched)");
    } else if !i.unmatched {
        let _ = writeln!(s, "  evidence   none");
    }
    evidence_lines(s, i, style);
    for c in &i.contracts {
        contract_lines(s, i, c, style);
    }
    for n in &i.notes {
        let _ = writeln!(s, "  note       {n}");
    }
    if !i.requests.is_empty() {
        let _ = writeln!(s, "  registry requests ({}):", i.requests.len());
        for q in &i.requests {
            let _ = writeln!(
                s,
                "    {:<9} {:<4} {} -> {} ({} bytes, {} ms)",
                q.kind, q.method, q.url, q.outcome, q.bytes, q.millis
            );
        }
    }
    if !i.denials.is_empty() {
        let _ = writeln!(s, "  admission will deny:");
        for l in &i.denials {
            let _ = writeln!(s, "    - {l}");
        }
    }
    if !i.warnings.is_empty() {
        let _ = writeln!(s, "  admission will warn:");
        for l in &i.warnings {
            let _ = writeln!(s, "    - {l}");
        }
    }
}

/// The evidence of one image, verified and rejected.
fn evidence_lines(s: &mut String, i: &ImageReport, style: &Style) {
    use std::fmt::Write as _;
    for e in &i.evidence {
        let what = e.predicate_type.as_deref().unwrap_or("image signature");
        let time = e
            .time
            .get("value")
            .and_then(|v| v.as_str())
            .map(|t| {
                format!(
                    "{t} ({})",
                    e.time.get("source").and_then(|v| v.as_str()).unwrap_or("?")
                )
            })
            .unwrap_or_else(|| "no trusted time".into());
        let _ = writeln!(s, "    {} {} {what}", style.paint(GREEN, "✓"), e.kind);
        let _ = writeln!(s, "        signer   {}", e.signer);
        let _ = writeln!(
            s,
            "        time     {time}; tlog entries {}",
            e.tlog_entries
        );
        let _ = writeln!(
            s,
            "        found    {} ({}) on {}",
            e.found_in, e.format, e.attached_to
        );
        let _ = writeln!(s, "        digest   {}", e.digest);
    }
    for e in &i.rejected {
        let _ = writeln!(
            s,
            "    {} {} on {}{}: {}",
            style.paint(RED, "✗"),
            e.found_in,
            e.attached_to,
            e.layer
                .as_deref()
                .map(|l| format!(" (layer {l})"))
                .unwrap_or_default(),
            e.reason
        );
    }
}

/// One contract's verdict, its violations with their fixes, and what it
/// ignored.
fn contract_lines(s: &mut String, i: &ImageReport, c: &ContractReport, style: &Style) {
    use std::fmt::Write as _;
    let mode = if c.mode != c.configured_mode {
        format!(
            "{} until {}, then {}",
            c.mode,
            c.enforce_after.as_deref().unwrap_or("?"),
            c.configured_mode
        )
    } else {
        c.mode.clone()
    };
    let binding = if c.binding.is_empty() {
        String::new()
    } else {
        format!("binding {}, ", c.binding)
    };
    let verdict = match c.verdict.as_str() {
        "pass" => style.paint(GREEN, "pass"),
        "deny" | "error" if c.mode == "enforce" => style.paint(RED, &c.verdict),
        "deny" | "error" | "warn" | "exempt" => style.paint(YELLOW, &c.verdict),
        other => other.to_owned(),
    };
    let _ = writeln!(
        s,
        "  contract   {} {} ({binding}{mode}): {verdict}",
        c.name, c.version
    );
    for (kind, list) in [("deny", &c.deny), ("warn", &c.warn)] {
        for v in list {
            let (line, fix) = violation_line(i, v);
            let _ = writeln!(s, "    {kind}  {line}");
            if let Some(f) = fix {
                let _ = writeln!(s, "          fix: {f}");
            }
        }
    }
    if let Some(e) = &c.error {
        let _ = writeln!(s, "    error {e}");
    }
    if let Some(e) = &c.exemption {
        let _ = writeln!(s, "    exempt until {}: {}", e.expires, e.reason);
    }
    for g in &c.ignored {
        let reason = g.reason.strip_prefix("ignored: ").unwrap_or(&g.reason);
        let _ = writeln!(s, "    ignored {}: {reason}", g.digest);
    }
}

/// The GitHub Actions job summary.
pub fn markdown(r: &GateResponse) -> String {
    use std::fmt::Write as _;
    let unverified = r
        .images
        .iter()
        .any(|i| matches!(i.status, ImageStatus::Unverified | ImageStatus::Error));
    let word = if r.outcome != Outcome::Deny && unverified {
        "allowed, not verified"
    } else {
        match r.outcome {
            Outcome::Allow => "allowed",
            Outcome::Warn => "allowed with warnings",
            Outcome::Deny => "denied",
        }
    };
    let mut s = format!("## provgate: {word}\n\n");
    s.push_str("| image | digest | outcome |\n|---|---|---|\n");
    for i in &r.images {
        let _ = writeln!(
            s,
            "| `{}` | `{}` | {} |",
            i.image,
            i.digest.as_deref().unwrap_or("-"),
            match i.status {
                ImageStatus::Unverified => "allow, **not verified**",
                ImageStatus::Error => "deny, **not checked**",
                _ => i.outcome.as_str(),
            }
        );
    }
    for i in &r.images {
        let nv = not_verified_line(i);
        if i.denials.is_empty() && i.warnings.is_empty() && nv.is_none() {
            continue;
        }
        let _ = writeln!(s, "\n### `{}`\n", i.image);
        if let Some(l) = nv {
            let _ = writeln!(s, "- :x: {l}");
        }
        // A denial line names the error already.
        if let Some(e) = &i.error
            && i.outcome != Outcome::Deny
        {
            let _ = writeln!(s, "- :x: {}", e.message);
        }
        for l in &i.denials {
            let _ = writeln!(s, "- :x: {l}");
        }
        for l in &i.warnings {
            let _ = writeln!(s, "- :warning: {l}");
        }
    }
    s.push('\n');
    s
}
