//! in-toto statement parsing (`provgate::verify::Statement::parse`) with
//! the default limits, and the invariants the verifier relies on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provgate::verify::{STATEMENT_V01, STATEMENT_V1, Statement, VerifyLimits};

fuzz_target!(|data: &[u8]| {
    let limits = VerifyLimits::default();
    let Ok(s) = Statement::parse(data, &limits) else {
        return;
    };
    assert!(s.statement_type() == STATEMENT_V1 || s.statement_type() == STATEMENT_V01);
    assert!(!s.predicate_type().is_empty());
    assert!(!s.subjects().is_empty());
    assert!(s.subjects().len() <= limits.max_subjects);
    for subject in s.subjects() {
        assert!(subject.digests.len() <= limits.max_digests_per_subject);
        for d in &subject.digests {
            assert!(s.binds(d));
            // Every digest kept is canonical.
            assert_eq!(
                d.to_string().parse::<provgate::digest::Digest>().as_ref(),
                Ok(d)
            );
        }
    }
    assert!(s.json().is_object());
});
