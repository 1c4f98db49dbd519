use super::*;
use crate::oci::error::{ConnectFailure, TimeoutKind};
use crate::oci::record::RequestKind;
use std::time::SystemTime;

const HOST: &str = "reg.example:5000";

fn policy() -> BackoffPolicy {
    BackoffPolicy {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(60),
    }
}

/// Records the circuit events it hears.
#[derive(Default)]
struct Heard(Mutex<Vec<String>>);
impl RequestObserver for Heard {
    fn observe(&self, _: &str, _: RequestKind, _: &str) {}
    fn circuit(&self, registry: &str, state: CircuitState) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{registry} {}", state.as_str()));
    }
    fn backoff(&self, registry: &str, cause: &str) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{registry} backoff {cause}"));
    }
    fn shed(&self, registry: &str) {
        self.0.lock().unwrap().push(format!("{registry} shed"));
    }
}

fn circuits() -> (Circuits, Arc<Heard>) {
    let heard = Arc::new(Heard::default());
    (Circuits::new(heard.clone()), heard)
}

fn rate_limited(secs: &str) -> Trip {
    Trip::for_status(429, Some(secs)).unwrap()
}

fn fail(c: &Circuits, now: Instant, trip: Trip, unit: f64) {
    let p = c.admit_at(HOST, policy(), now).unwrap();
    let (epoch, probe) = (p.epoch, p.probe);
    std::mem::forget(p);
    c.failed_at(HOST, epoch, probe, &policy(), trip, now, unit);
}

#[test]
fn retry_after_reads_seconds_and_every_http_date_format() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
    assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
    assert_eq!(
        parse_retry_after(" 120 ", now),
        Some(Duration::from_secs(120))
    );
    for date in [
        "Sun, 06 Nov 1994 08:50:07 GMT",  // IMF-fixdate
        "Sunday, 06-Nov-94 08:50:07 GMT", // RFC 850
        "Sun Nov  6 08:50:07 1994",       // asctime
    ] {
        assert_eq!(
            parse_retry_after(date, now),
            Some(Duration::from_secs(30)),
            "{date}"
        );
    }
    // A date in the past: retry now.
    assert_eq!(
        parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
        Some(Duration::ZERO)
    );
    // Too many seconds to represent: the longest (capped later).
    assert_eq!(
        parse_retry_after("99999999999999999999999", now),
        Some(Duration::MAX)
    );
    for bad in [
        "",
        "-1",
        "1.5",
        "soon",
        "2 s",
        "0x10",
        "Sun, 31 Feb 1994 08:00:00 GMT",
    ] {
        assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
    }
}

#[test]
fn steps_double_up_to_the_cap_and_retry_after_is_capped_too() {
    let p = policy();
    let steps: Vec<u64> = (1..=8).map(|n| p.step(n).as_secs()).collect();
    assert_eq!(steps, [1, 2, 4, 8, 16, 32, 60, 60]);
    assert_eq!(p.step(u32::MAX), Duration::from_secs(60));
    assert_eq!(p.step(0), Duration::from_secs(1));
    assert_eq!(
        p.delay(1, Some(Duration::from_secs(2)), 0.9),
        Duration::from_secs(2),
        "Retry-After is honoured exactly, without jitter"
    );
    assert_eq!(
        p.delay(1, Some(Duration::from_secs(3600)), 0.0),
        Duration::from_secs(60)
    );
    assert_eq!(
        p.delay(1, Some(Duration::MAX), 0.0),
        Duration::from_secs(60)
    );
    assert_eq!(p.delay(9, Some(Duration::ZERO), 0.5), Duration::ZERO);
}

#[test]
fn jitter_stays_within_the_upper_half_of_the_step() {
    let p = policy();
    for failures in 1..=10 {
        let step = p.step(failures);
        assert_eq!(p.delay(failures, None, 0.0), step / 2);
        assert_eq!(p.delay(failures, None, 1.0), step);
        for unit in [f64::NAN, f64::INFINITY, -3.0, 7.0] {
            let d = p.delay(failures, None, unit);
            assert!(d >= step / 2 && d <= step, "{unit}: {d:?}");
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..1000 {
        let u = jitter_unit();
        assert!((0.0..1.0).contains(&u), "{u}");
        let d = p.delay(3, None, u);
        assert!(
            d >= Duration::from_secs(2) && d <= Duration::from_secs(4),
            "{d:?}"
        );
        seen.insert(d.as_millis() / 100);
    }
    assert!(seen.len() > 10, "jitter does not spread: {seen:?}");
}

#[test]
fn a_429_opens_the_circuit_for_retry_after_and_requests_fail_without_being_sent() {
    let (c, heard) = circuits();
    let t0 = Instant::now();
    fail(&c, t0, rate_limited("2"), 0.5);
    assert_eq!(c.state_at(HOST, t0), CircuitState::Open);
    assert_eq!(c.remaining_at(HOST, t0), Some(Duration::from_secs(2)));
    let r = c
        .admit_at(HOST, policy(), t0 + Duration::from_millis(1999))
        .unwrap_err();
    assert_eq!(r.until, t0 + Duration::from_secs(2));
    assert!(!r.probing);
    assert_eq!(r.cause, "429 Too Many Requests (Retry-After: 2)");
    let e = r.error(HOST, "resolve app:v1");
    assert!(
        e.to_string()
            .starts_with(&format!("registry {HOST} is backing off until ")),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains(" after 429 Too Many Requests (Retry-After: 2): resolve app:v1 was not sent"),
        "{e}"
    );
    assert_eq!(e.class(), crate::oci::ErrorClass::Transient);
    assert!(e.is_operational());
    // Other hosts are not affected.
    assert!(c.admit_at("other.example", policy(), t0).is_ok());
    assert_eq!(
        *heard.0.lock().unwrap(),
        [
            format!("{HOST} open"),
            format!("{HOST} backoff 429"),
            format!("{HOST} shed")
        ]
    );
}

#[test]
fn half_open_lets_exactly_one_probe_through() {
    let (c, _) = circuits();
    let t0 = Instant::now();
    fail(&c, t0, rate_limited("2"), 0.5);
    let t1 = t0 + Duration::from_secs(2);
    let probe = c.admit_at(HOST, policy(), t1).unwrap();
    assert!(probe.is_probe());
    assert_eq!(c.state_at(HOST, t1), CircuitState::HalfOpen);
    assert_eq!(c.remaining_at(HOST, t1), Some(Duration::ZERO));
    for _ in 0..10 {
        let r = c.admit_at(HOST, policy(), t1).unwrap_err();
        assert!(r.probing);
        assert!(
            r.error(HOST, "blob x")
                .to_string()
                .contains("a probe request is in flight"),
        );
    }
    probe.succeeded();
    assert_eq!(c.state_at(HOST, t1), CircuitState::Closed);
    assert_eq!(c.remaining_at(HOST, t1), None);
    let p = c.admit_at(HOST, policy(), t1).unwrap();
    assert!(!p.is_probe());
    p.succeeded();
}

#[test]
fn a_failed_probe_backs_off_longer_and_a_success_resets_the_count() {
    let (c, _) = circuits();
    let mut now = Instant::now();
    let five_oh_three = || Trip::for_status(503, None).unwrap();
    // No Retry-After: 1, 2, 4, 8 s (unit 1.0: the top of each step).
    for want in [1, 2, 4, 8] {
        let p = c.admit_at(HOST, policy(), now).unwrap();
        let (epoch, probe) = (p.epoch, p.probe);
        std::mem::forget(p);
        c.failed_at(HOST, epoch, probe, &policy(), five_oh_three(), now, 1.0);
        assert_eq!(c.remaining_at(HOST, now), Some(Duration::from_secs(want)));
        now += Duration::from_secs(want);
    }
    let probe = c.admit_at(HOST, policy(), now).unwrap();
    probe.succeeded();
    fail(&c, now, five_oh_three(), 1.0);
    assert_eq!(
        c.remaining_at(HOST, now),
        Some(Duration::from_secs(1)),
        "the count starts again after a success"
    );
}

#[test]
fn requests_in_flight_when_the_circuit_opened_do_not_extend_or_close_it() {
    let (c, heard) = circuits();
    let t0 = Instant::now();
    // 50 requests in flight while closed; all meet a 429.
    let permits: Vec<_> = (0..50)
        .map(|_| c.admit_at(HOST, policy(), t0).unwrap())
        .collect();
    for p in permits {
        let (epoch, probe) = (p.epoch, p.probe);
        std::mem::forget(p);
        c.failed_at(HOST, epoch, probe, &policy(), rate_limited("2"), t0, 1.0);
    }
    assert_eq!(c.remaining_at(HOST, t0), Some(Duration::from_secs(2)));
    let opened = heard
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.ends_with("backoff 429"))
        .count();
    assert_eq!(opened, 1, "one episode, one back-off");
    // A late success of a request admitted before does not close it.
    let (c, _) = circuits();
    let early = c.admit_at(HOST, policy(), t0).unwrap();
    fail(&c, t0, rate_limited("2"), 0.0);
    early.succeeded();
    assert_eq!(c.state_at(HOST, t0), CircuitState::Open);
    // Nor does a non-probe success while half-open.
    let t1 = t0 + Duration::from_secs(2);
    let probe = c.admit_at(HOST, policy(), t1).unwrap();
    c.succeeded_at(HOST, probe.epoch, false, t1);
    assert_eq!(c.state_at(HOST, t1), CircuitState::HalfOpen);
    probe.succeeded();
    assert_eq!(c.state_at(HOST, t1), CircuitState::Closed);
}

#[test]
fn a_probe_dropped_without_an_outcome_frees_the_slot() {
    let (c, _) = circuits();
    let t0 = Instant::now();
    fail(&c, t0, rate_limited("1"), 0.0);
    let t1 = t0 + Duration::from_secs(1);
    let probe = c.admit_at(HOST, policy(), t1).unwrap();
    assert!(c.admit_at(HOST, policy(), t1).is_err());
    drop(probe);
    let next = c.admit_at(HOST, policy(), t1).unwrap();
    assert!(next.is_probe());
    assert!(c.admit_at(HOST, policy(), t1).is_err());
    next.failed(rate_limited("5"));
    assert_eq!(c.state_at(HOST, Instant::now()), CircuitState::Open);
}

#[test]
fn a_zero_cap_turns_circuits_off() {
    let (c, _) = circuits();
    let off = BackoffPolicy {
        initial: Duration::from_secs(1),
        max: Duration::ZERO,
    };
    let t0 = Instant::now();
    for _ in 0..3 {
        let p = c.admit_at(HOST, off, t0).unwrap();
        p.failed(rate_limited("30"));
    }
    assert!(c.admit_at(HOST, off, t0).is_ok());
}

#[test]
fn only_overload_and_outages_trip() {
    use RegistryErrorKind as K;
    let e = |kind| RegistryError::new(HOST, "manifest app@sha256:aa", kind);
    let trips = [
        K::Timeout(TimeoutKind::Request(Duration::from_secs(2))),
        K::Connect(ConnectFailure::Refused),
        K::Connect(ConnectFailure::Other("connection reset".into())),
        K::RateLimited {
            retry_after: Some(Duration::from_secs(3)),
        },
        K::Server(502),
    ];
    for k in trips {
        assert!(Trip::for_error(&e(k.clone())).is_some(), "{k:?}");
    }
    let t = Trip::for_error(&e(K::RateLimited {
        retry_after: Some(Duration::from_secs(3)),
    }))
    .unwrap();
    assert_eq!(t.retry_after, Some(Duration::from_secs(3)));
    assert_eq!(
        t.cause,
        "429 Too Many Requests from manifest app@sha256:aa (retry after 3 s)"
    );
    let not = [
        K::Connect(ConnectFailure::PlainHttp),
        K::Connect(ConnectFailure::Dns("no such host".into())),
        K::Timeout(TimeoutKind::Deadline(Duration::from_secs(20))),
        K::NotFound,
        K::TooLarge {
            what: "manifest",
            limit: 1,
            size: 2,
        },
        K::Status(418),
    ];
    for k in not {
        assert!(Trip::for_error(&e(k.clone())).is_none(), "{k:?}");
    }
    for s in [200u16, 301, 401, 404, 418, 501, 505] {
        assert!(Trip::for_status(s, None).is_none(), "{s}");
    }
    assert_eq!(
        Trip::for_status(503, Some("Sun, 06 Nov 1994 08:49:37 GMT"))
            .unwrap()
            .cause,
        "503 Service Unavailable (Retry-After: Sun, 06 Nov 1994 08:49:37 GMT)"
    );
    assert_eq!(
        Trip::for_status(500, None).unwrap().cause,
        "500 Internal Server Error (no Retry-After)"
    );
    // Hostile header values are shown tamed.
    let t = Trip::for_status(429, Some("\u{1b}[31m9\r\n")).unwrap();
    assert_eq!(t.cause, "429 Too Many Requests (Retry-After: [31m9)");
    assert_eq!(t.retry_after, None);
}

#[test]
fn the_number_of_tracked_hosts_is_bounded() {
    let (c, _) = circuits();
    let t0 = Instant::now();
    let names: Vec<String> = (0..MAX_HOSTS + 10).map(|i| format!("h{i}:5000")).collect();
    for n in &names {
        let p = c.admit_at(n, policy(), t0).unwrap();
        p.failed(rate_limited("30"));
    }
    assert!(c.hosts.lock().unwrap().len() <= MAX_HOSTS);
    // Untracked hosts are asked (no back-off) rather than refused.
    assert!(c.admit_at(&names[MAX_HOSTS + 5], policy(), t0).is_ok());
    // Closed hosts make room.
    let t1 = t0 + Duration::from_secs(31);
    let p = c.admit_at(&names[0], policy(), t1).unwrap();
    p.succeeded();
    let late = "late:5000";
    c.admit_at(late, policy(), t1)
        .unwrap()
        .failed(rate_limited("30"));
    assert_eq!(c.state_at(late, Instant::now()), CircuitState::Open);
}
