//! The outcome fold: how one image's contract verdicts, their modes, the
//! binding's exemption and a failure to fetch evidence combine into one
//! admission outcome.
//!
//! The rules, which the table tests below spell out row by row:
//! - `audit` never changes the outcome;
//! - `warn` turns a failed contract (deny or evaluation error) into a
//!   warning;
//! - `enforce` denies on a failed contract, unless an active exemption
//!   covers it, which makes it a warning that names the exemption;
//! - a passing contract with `warn` results warns in every mode but audit;
//! - when no evidence could be fetched, the image is denied if any bound
//!   contract enforces without an exemption (fail closed), warned if one
//!   warns or is exempted, and allowed only when every bound contract is
//!   audit-only; a degraded answer (the registry's `warn` failure policy)
//!   is a warning;
//! - over the platforms of an index, the worst verdict wins.

use crate::bind::Mode;

use super::decision::{ContractResult, ExemptionInfo, Outcome, Verdict};

/// The more severe of two verdicts (for the worst platform): pass and
/// exempt < warn < deny < error. On a tie, `a` is kept.
pub(super) fn worst(a: Verdict, b: Verdict) -> Verdict {
    let rank = |v: Verdict| match v {
        Verdict::Pass | Verdict::Exempt => 0,
        Verdict::Warn => 1,
        Verdict::Deny => 2,
        Verdict::Error => 3,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// A failed contract (deny or error) under an active exemption is exempt,
/// and says which exemption covered it.
pub(super) fn exempt(
    mut result: ContractResult,
    exemption: Option<&ExemptionInfo>,
) -> ContractResult {
    let failed = matches!(result.verdict, Verdict::Deny | Verdict::Error);
    if failed && let Some(ex) = exemption {
        result.verdict = Verdict::Exempt;
        result.exemption = Some(ex.clone());
    }
    result
}

/// What one contract's result contributes to the image's outcome in a
/// mode.
pub(super) fn contribution(mode: Mode, result: &ContractResult) -> Outcome {
    match (mode, result.verdict) {
        (Mode::Audit, _) => Outcome::Allow,
        (Mode::Enforce, Verdict::Deny | Verdict::Error) => Outcome::Deny,
        (Mode::Warn, Verdict::Deny | Verdict::Error) => Outcome::Warn,
        (_, Verdict::Warn | Verdict::Exempt) => Outcome::Warn,
        (_, Verdict::Pass) => {
            if result.warn.is_empty() {
                Outcome::Allow
            } else {
                Outcome::Warn
            }
        }
    }
}

/// The outcome when the image's evidence could not be fetched or
/// verified: `bound` gives each bound contract's mode and whether an
/// exemption covers it; `degraded`, whether the registry's `warn` failure
/// policy let the image through.
pub(super) fn failure_outcome(
    bound: impl IntoIterator<Item = (Mode, bool)>,
    degraded: bool,
) -> Outcome {
    if degraded {
        return Outcome::Warn;
    }
    bound
        .into_iter()
        .map(|(mode, exempted)| match mode {
            Mode::Enforce if !exempted => Outcome::Deny,
            Mode::Enforce | Mode::Warn => Outcome::Warn,
            Mode::Audit => Outcome::Allow,
        })
        .max()
        .unwrap_or(Outcome::Allow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bind::EffectiveMode;
    use crate::digest::Digest;
    use crate::policy::Violation;

    /// What a contract's evaluation produced, before modes and exemptions.
    #[derive(Debug, Clone, Copy)]
    enum Eval {
        Pass,
        PassWithWarnings,
        Warn,
        Deny,
        Error,
    }

    fn result(mode: Mode, eval: Eval) -> ContractResult {
        let violation = Violation {
            msg: "no provenance".into(),
            requirement: Some("provenance".into()),
            fix: None,
        };
        let (verdict, deny, warn, error) = match eval {
            Eval::Pass => (Verdict::Pass, vec![], vec![], None),
            Eval::PassWithWarnings => (Verdict::Pass, vec![], vec![violation], None),
            Eval::Warn => (Verdict::Warn, vec![], vec![violation], None),
            Eval::Deny => (Verdict::Deny, vec![violation], vec![], None),
            Eval::Error => (Verdict::Error, vec![], vec![], Some("timed out".into())),
        };
        ContractResult {
            name: "slsa-provenance".into(),
            version: "1".into(),
            revision: Digest::compute(crate::digest::Algorithm::Sha256, b"rev"),
            binding: "b".into(),
            mode: EffectiveMode {
                mode,
                configured: mode,
                enforce_after: None,
            },
            verdict,
            deny,
            warn,
            error,
            exemption: None,
            evidence_used: vec![],
            ignored: vec![],
            platforms: vec![],
            inputs: vec![],
        }
    }

    fn exemption() -> ExemptionInfo {
        ExemptionInfo {
            reason: "INC-42 vendor image".into(),
            expires: "2027-01-01T00:00:00Z".into(),
        }
    }

    /// Every mode × evaluation × exemption, with the outcome written out
    /// rather than derived.
    #[test]
    fn mode_verdict_and_exemption_fold_into_the_outcome() {
        use Eval::*;
        use Outcome::{Allow as A, Deny as D, Warn as W};
        #[rustfmt::skip]
        let table: &[(Mode, Eval, bool, Outcome, Verdict)] = &[
            // mode,         evaluation,       exempted, outcome, final verdict
            (Mode::Audit,   Pass,             false, A, Verdict::Pass),
            (Mode::Audit,   PassWithWarnings, false, A, Verdict::Pass),
            (Mode::Audit,   Warn,             false, A, Verdict::Warn),
            (Mode::Audit,   Deny,             false, A, Verdict::Deny),
            (Mode::Audit,   Error,            false, A, Verdict::Error),
            (Mode::Audit,   Deny,             true,  A, Verdict::Exempt),
            (Mode::Audit,   Error,            true,  A, Verdict::Exempt),
            (Mode::Warn,    Pass,             false, A, Verdict::Pass),
            (Mode::Warn,    PassWithWarnings, false, W, Verdict::Pass),
            (Mode::Warn,    Warn,             false, W, Verdict::Warn),
            (Mode::Warn,    Deny,             false, W, Verdict::Deny),
            (Mode::Warn,    Error,            false, W, Verdict::Error),
            (Mode::Warn,    Deny,             true,  W, Verdict::Exempt),
            (Mode::Warn,    Pass,             true,  A, Verdict::Pass),
            (Mode::Enforce, Pass,             false, A, Verdict::Pass),
            (Mode::Enforce, PassWithWarnings, false, W, Verdict::Pass),
            (Mode::Enforce, Warn,             false, W, Verdict::Warn),
            (Mode::Enforce, Deny,             false, D, Verdict::Deny),
            (Mode::Enforce, Error,            false, D, Verdict::Error),
            (Mode::Enforce, Deny,             true,  W, Verdict::Exempt),
            (Mode::Enforce, Error,            true,  W, Verdict::Exempt),
            (Mode::Enforce, Pass,             true,  A, Verdict::Pass),
            (Mode::Enforce, Warn,             true,  W, Verdict::Warn),
        ];
        let ex = exemption();
        for &(mode, eval, exempted, outcome, verdict) in table {
            let r = exempt(result(mode, eval), exempted.then_some(&ex));
            assert_eq!(r.verdict, verdict, "{mode:?} {eval:?} exempted={exempted}");
            assert_eq!(
                r.exemption.is_some(),
                verdict == Verdict::Exempt,
                "the exemption is named exactly when it applied: {mode:?} {eval:?}"
            );
            assert_eq!(
                contribution(mode, &r),
                outcome,
                "{mode:?} {eval:?} exempted={exempted}"
            );
        }
    }

    #[test]
    fn the_image_outcome_is_the_most_severe_contribution() {
        let outcomes = [
            contribution(Mode::Audit, &result(Mode::Audit, Eval::Deny)),
            contribution(Mode::Warn, &result(Mode::Warn, Eval::Deny)),
            contribution(Mode::Enforce, &result(Mode::Enforce, Eval::Pass)),
        ];
        assert_eq!(outcomes.into_iter().max(), Some(Outcome::Warn));
        assert!(Outcome::Deny > Outcome::Warn && Outcome::Warn > Outcome::Allow);
    }

    /// Bound (mode, exempted) pairs, whether the answer is degraded, and
    /// the outcome.
    type FailureRow = (&'static [(Mode, bool)], bool, Outcome);

    /// A failure to fetch evidence, under every combination of bound modes
    /// and the registry's failure policy.
    #[test]
    fn failures_deny_unless_nothing_enforces() {
        use Outcome::{Allow as A, Deny as D, Warn as W};
        #[rustfmt::skip]
        let table: &[FailureRow] = &[
            // bound (mode, exempted),                          degraded, outcome
            (&[(Mode::Enforce, false)],                          false, D),
            (&[(Mode::Enforce, true)],                           false, W),
            (&[(Mode::Warn, false)],                             false, W),
            (&[(Mode::Audit, false)],                            false, A),
            (&[(Mode::Audit, false), (Mode::Enforce, false)],    false, D),
            (&[(Mode::Audit, false), (Mode::Warn, false)],       false, W),
            (&[(Mode::Enforce, true), (Mode::Enforce, false)],   false, D),
            (&[],                                                false, A),
            // the registry's `warn` failure policy: allowed with a warning,
            // even under enforce
            (&[(Mode::Enforce, false)],                          true,  W),
            (&[(Mode::Audit, false)],                            true,  W),
        ];
        for &(bound, degraded, outcome) in table {
            assert_eq!(
                failure_outcome(bound.iter().copied(), degraded),
                outcome,
                "{bound:?} degraded={degraded}"
            );
        }
    }

    #[test]
    fn the_worst_platform_verdict_wins() {
        use Verdict::*;
        let order = [Pass, Warn, Deny, Error];
        for (i, a) in order.iter().enumerate() {
            for (j, b) in order.iter().enumerate() {
                let expect = if j > i { *b } else { *a };
                assert_eq!(worst(*a, *b), expect, "{a:?} vs {b:?}");
            }
        }
        assert_eq!(worst(Exempt, Pass), Exempt, "a tie keeps the first");
        assert_eq!(worst(Exempt, Deny), Deny);
        assert_eq!(worst(Error, Exempt), Error);
    }
}
