//! Judging the times a bundle carries against the verifier's clock.
//!
//! A signing time in the future is never genuine: Rekor stamps an entry when
//! it integrates it, and a TSA when it answers. A future time means a clock
//! that is badly wrong or a forged time, and either way it must not become
//! the trusted time of evidence (it would, for example, keep evidence
//! "fresh" for a `max-age` contract long after it was signed).
//!
//! sigstore-verify already refuses a future `integratedTime` that a signed
//! entry timestamp (SET) authenticates, with no tolerance at all. provgate
//! judges every time of a bundle again, whatever authenticates it and before
//! any cryptography runs:
//!
//! - the `integratedTime` of **every** transparency-log entry, including
//!   entries that carry only an inclusion proof (whose `integratedTime` no
//!   signature covers, so nothing else would look at it);
//! - every verified RFC 3161 timestamp (a TSA whose clock runs ahead).
//!
//! Each may lie at most [`MAX_FUTURE_SKEW`] after the verifier's clock, to
//! tolerate ordinary skew between this host and the log or TSA.

use jiff::{SignedDuration, Timestamp};

use super::VerifyError;

/// How far after the verifier's clock a signed time may lie (60 seconds).
///
/// NTP-synchronised hosts are within milliseconds of each other; a minute
/// covers a badly synchronised node without letting a forged time keep
/// evidence fresh for any useful period.
pub const MAX_FUTURE_SKEW: SignedDuration = SignedDuration::from_secs(60);

/// Which time of a bundle is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeKind {
    /// The `integratedTime` of a transparency-log entry.
    IntegratedTime,
    /// The `genTime` of a verified RFC 3161 timestamp.
    Rfc3161,
}

impl std::fmt::Display for TimeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeKind::IntegratedTime => "transparency-log integratedTime",
            TimeKind::Rfc3161 => "RFC 3161 timestamp",
        })
    }
}

/// Refuses `time` when it lies more than [`MAX_FUTURE_SKEW`] after `now`.
pub fn check_not_in_future(
    kind: TimeKind,
    time: Timestamp,
    now: Timestamp,
) -> Result<(), VerifyError> {
    // Saturating: a `now` near the end of jiff's range must not panic.
    let limit = now.checked_add(MAX_FUTURE_SKEW).unwrap_or(Timestamp::MAX);
    if time > limit {
        return Err(VerifyError::FutureTime { kind, time, now });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn a_time_in_the_past_or_now_is_accepted() {
        let now = t(1_800_000_000);
        for time in [t(1_700_000_000), t(1_799_999_999), now] {
            check_not_in_future(TimeKind::IntegratedTime, time, now).unwrap();
        }
    }

    #[test]
    fn a_time_within_the_documented_skew_is_accepted() {
        let now = t(1_800_000_000);
        check_not_in_future(TimeKind::Rfc3161, t(1_800_000_060), now).unwrap();
    }

    #[test]
    fn a_time_one_second_beyond_the_skew_is_refused_and_says_why() {
        let now = t(1_800_000_000);
        let err = check_not_in_future(TimeKind::IntegratedTime, t(1_800_000_061), now).unwrap_err();
        assert!(
            matches!(
                err,
                VerifyError::FutureTime {
                    kind: TimeKind::IntegratedTime,
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("integratedTime"), "{text}");
        assert!(text.contains("in the future"), "{text}");
        assert!(text.contains("60 s"), "{text}");
    }

    #[test]
    fn a_far_future_time_is_refused_for_either_kind() {
        let now = t(1_800_000_000);
        for kind in [TimeKind::IntegratedTime, TimeKind::Rfc3161] {
            assert!(check_not_in_future(kind, t(4_000_000_000), now).is_err());
        }
    }

    #[test]
    fn the_end_of_time_does_not_overflow() {
        check_not_in_future(TimeKind::Rfc3161, Timestamp::MAX, Timestamp::MAX).unwrap();
        assert!(check_not_in_future(TimeKind::Rfc3161, Timestamp::MAX, t(0)).is_err());
    }
}
