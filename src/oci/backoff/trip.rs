//! What opens a circuit: a 429, a 5xx, a timeout or a refused connection,
//! with the delay the registry asked for (`Retry-After`), if any.

use std::time::{Duration, SystemTime};

use crate::oci::error::{ConnectFailure, RegistryError, RegistryErrorKind, TimeoutKind};

/// A failure that opens a circuit: the registry is overloaded or down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trip {
    /// A metrics label: `429`, `5xx`, `timeout` or `connect`.
    pub label: &'static str,
    /// For messages, e.g. `429 Too Many Requests (Retry-After: 2)`.
    pub cause: String,
    /// The registry's `Retry-After`, parsed.
    pub retry_after: Option<Duration>,
}

impl Trip {
    /// The trip of an HTTP answer, if its status is one (429, 5xx but
    /// 501 and 505, which say "not supported", not "overloaded": registries
    /// without the referrers API may answer 501). `retry_after` is the raw
    /// `Retry-After` header.
    pub fn for_status(status: u16, retry_after: Option<&str>) -> Option<Trip> {
        let label = match status {
            429 => "429",
            501 | 505 => return None,
            500..=599 => "5xx",
            _ => return None,
        };
        let reason = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let header = retry_after.map(str::trim).filter(|v| !v.is_empty());
        let cause = match header {
            Some(v) => format!("{status} {reason} (Retry-After: {})", printable(v)),
            None => format!("{status} {reason} (no Retry-After)"),
        };
        Some(Trip {
            label,
            cause: cause.replace("  ", " "),
            retry_after: header.and_then(|v| parse_retry_after(v, SystemTime::now())),
        })
    }

    /// The trip of a failed request, if the failure says the registry is
    /// overloaded or down: a request timeout, a refused or dropped
    /// connection, or a 429/5xx from its token endpoint.
    pub fn for_error(e: &RegistryError) -> Option<Trip> {
        use RegistryErrorKind as K;
        let (label, cause, retry_after) = match &e.kind {
            K::Timeout(TimeoutKind::Request(d)) => {
                ("timeout", format!("no answer within {}", seconds(*d)), None)
            }
            K::Connect(c @ (ConnectFailure::Refused | ConnectFailure::Other(_))) => {
                ("connect", c.to_string(), None)
            }
            K::RateLimited { retry_after } => (
                "429",
                match retry_after {
                    Some(d) => format!(
                        "429 Too Many Requests from {} (retry after {})",
                        e.context,
                        seconds(*d)
                    ),
                    None => format!("429 Too Many Requests from {}", e.context),
                },
                *retry_after,
            ),
            K::Server(s) if !matches!(s, 501 | 505) => {
                ("5xx", format!("{s} from {}", e.context), None)
            }
            _ => return None,
        };
        Some(Trip {
            label,
            cause,
            retry_after,
        })
    }
}

/// `Retry-After`: delay-seconds, or an HTTP date (IMF-fixdate, RFC 850 or
/// asctime, as RFC 9110 requires), as the time from `now` until then (zero
/// for a date in the past). Seconds too large to represent are the
/// longest duration (back-offs are capped anyway); anything else is
/// `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return Some(
            v.parse::<u64>()
                .map(Duration::from_secs)
                .unwrap_or(Duration::MAX),
        );
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A header value as shown in messages: printable ASCII, at most 64
/// characters.
fn printable(v: &str) -> String {
    let mut s: String = v
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(64)
        .collect();
    if v.len() > 64 {
        s.push('…');
    }
    s
}

/// `2 s`, `1500 ms`.
pub(super) fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}
