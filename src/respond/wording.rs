//! The wording of a decision: the denial lines admission puts in
//! `status.message` and the gate and `check` print, and the warning lines
//! kubectl shows. Every surface takes its lines from here, so a team reads
//! the same requirement and fix wherever it meets a denial.

use crate::bind::Mode;
use crate::engine::decision::{ImageDecision, Outcome, Verdict};
use crate::policy::Violation;

impl ImageDecision {
    /// Where this image appeared, for messages: `container "api"` or the image.
    pub fn subject_label(&self) -> String {
        match &self.context.container {
            Some(c) => format!("container {c:?} ({})", self.image),
            None => self.image.clone(),
        }
    }

    /// The denial lines: one per unmet requirement, with its fix.
    pub fn denial_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let who = self.subject_label();
        if let Some(e) = &self.error {
            out.push(format!("{who}: {}", e.message));
        }
        if self.unmatched && self.outcome == Outcome::Deny {
            out.push(format!(
                "{who}: no contract binding covers this image, and unmatched images are denied; ask the platform team to bind contracts to it"
            ));
        }
        for c in &self.contracts {
            if c.mode.mode != Mode::Enforce {
                continue;
            }
            match c.verdict {
                Verdict::Deny => {
                    for v in &c.deny {
                        out.push(violation_line(&who, &c.name, v));
                    }
                }
                Verdict::Error => out.push(format!(
                    "{who}: [{}] {}",
                    c.name,
                    c.error.as_deref().unwrap_or("contract evaluation failed")
                )),
                _ => {}
            }
        }
        out
    }

    /// The warning lines: warn-mode denials (with their enforcement date),
    /// `warn` results, exemptions in use and degraded service.
    ///
    /// Warnings are short (API servers truncate them at 256 characters), so
    /// they name the container alone when there is one, and put the
    /// requirement id before the message.
    pub fn warning_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let who = match &self.context.container {
            Some(c) => format!("container {c:?}"),
            None => self.image.clone(),
        };
        if let Some(d) = &self.degraded {
            out.push(format!("{who}: {d}"));
        }
        if self.unmatched && self.outcome == Outcome::Warn {
            out.push(format!("{who}: no contract binding covers this image"));
        }
        for c in &self.contracts {
            if c.mode.mode == Mode::Audit {
                continue;
            }
            if let Some(e) = &c.exemption {
                out.push(format!(
                    "{who}: [{}] exempted until {}: {}",
                    c.name, e.expires, e.reason
                ));
                continue;
            }
            if c.mode.mode == Mode::Warn {
                // The enforcement date goes first: API servers truncate
                // long warnings, and the date is what a team must plan for.
                let label = match c.mode.enforce_after {
                    Some(t) => format!(
                        "{}, will be enforced from {}",
                        c.name,
                        t.strftime("%Y-%m-%d %H:%M UTC")
                    ),
                    None => c.name.clone(),
                };
                for v in &c.deny {
                    out.push(warning_line(&who, &label, v));
                }
                if c.verdict == Verdict::Error {
                    out.push(format!(
                        "{who}: [{label}] {}",
                        c.error.as_deref().unwrap_or("evaluation failed")
                    ));
                }
            }
            for v in &c.warn {
                out.push(warning_line(&who, &c.name, v));
            }
        }
        out
    }
}

fn violation_line(who: &str, contract: &str, v: &Violation) -> String {
    format!("{who}: [{contract}] {}", violation_text(v))
}

fn warning_line(who: &str, label: &str, v: &Violation) -> String {
    let mut s = format!("{who}: [{label}] ");
    if let Some(r) = &v.requirement {
        s.push_str(r);
        s.push_str(": ");
    }
    s.push_str(&v.msg);
    if let Some(f) = &v.fix {
        s.push_str(&format!(" Fix: {f}"));
    }
    s
}

/// A violation as one line: the message, its requirement id and its fix.
pub fn violation_text(v: &Violation) -> String {
    let mut s = v.msg.clone();
    if let Some(r) = &v.requirement {
        s.push_str(&format!(" (requirement {r})"));
    }
    if let Some(f) = &v.fix {
        s.push_str(&format!(" Fix: {f}"));
    }
    s
}

#[cfg(test)]
#[path = "wording_tests.rs"]
mod tests;
