//! The engine against a scripted [`Registry`]: caching, coalescing,
//! negative entries, failure policies and the deadline, with no registry
//! and no signature (the script attaches no evidence, so the one contract,
//! which requires SLSA provenance, denies whatever it judges). What the
//! evidence says is tested against the real kit in `tests/it`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::*;
use crate::clock::SystemClock;
use crate::engine::decision::Outcome;
use crate::oci::{CredentialSet, Discovery, RegistryErrorKind, Resolved, Traced};
use crate::policy::Source;

const REGISTRY: &str = "reg.example";
const IMAGE: &str = "reg.example/team/app:1";

/// How the script answers.
#[derive(Clone, Copy)]
enum Answer {
    /// Every tag names [`digest`]; discovery finds no evidence.
    Ok,
    /// Every request fails with a 503 (transient).
    Unavailable,
    /// Discovery fails with 404 (permanent).
    NotFound,
}

/// A registry that answers from a script and counts what it was asked.
struct Script {
    answer: Mutex<Answer>,
    /// How long each answer takes.
    delay: Duration,
    resolves: AtomicUsize,
    discovers: AtomicUsize,
    limits: crate::oci::Limits,
}

impl Script {
    fn new(delay: Duration) -> Arc<Script> {
        Arc::new(Script {
            answer: Mutex::new(Answer::Ok),
            delay,
            resolves: AtomicUsize::new(0),
            discovers: AtomicUsize::new(0),
            limits: crate::oci::Limits::default(),
        })
    }

    fn set(&self, a: Answer) {
        *self.answer.lock().unwrap() = a;
    }

    fn answer(&self) -> Answer {
        *self.answer.lock().unwrap()
    }

    fn calls(&self) -> (usize, usize) {
        (
            self.resolves.load(Ordering::SeqCst),
            self.discovers.load(Ordering::SeqCst),
        )
    }
}

fn digest() -> Digest {
    Digest::sha256_of(b"the manifest")
}

fn unavailable(context: &str) -> RegistryError {
    RegistryError::new(REGISTRY, context, RegistryErrorKind::Server(503))
}

impl Registry for Script {
    fn resolve<'a>(
        &'a self,
        image: &'a ImageRef,
        _creds: &'a CredentialSet,
    ) -> BoxFuture<'a, Traced<Resolved>> {
        Box::pin(async move {
            self.resolves.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            let result = match (image.digest(), self.answer()) {
                (Some(d), _) => Ok(Resolved {
                    digest: d.clone(),
                    media_type: None,
                    pinned: true,
                }),
                (None, Answer::Unavailable) => Err(unavailable("resolve")),
                (None, _) => Ok(Resolved {
                    digest: digest(),
                    media_type: Some(crate::oci::manifest::OCI_MANIFEST.into()),
                    pinned: false,
                }),
            };
            Traced {
                result,
                requests: Vec::new(),
            }
        })
    }

    fn discover<'a>(
        &'a self,
        _image: &'a ImageRef,
        digest: &'a Digest,
        media_type: Option<&'a str>,
        _creds: &'a CredentialSet,
        _opts: crate::oci::DiscoverOptions,
    ) -> BoxFuture<'a, Traced<Discovery>> {
        Box::pin(async move {
            self.discovers.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            let result = match self.answer() {
                Answer::Ok => Ok(Discovery {
                    digest: digest.clone(),
                    media_type: media_type.map(str::to_owned),
                    platforms: Vec::new(),
                    evidence: Vec::new(),
                    notes: Vec::new(),
                    registry: REGISTRY.into(),
                    manifest: None,
                }),
                Answer::Unavailable => Err(unavailable("discover")),
                Answer::NotFound => Err(RegistryError::new(
                    REGISTRY,
                    "discover",
                    RegistryErrorKind::NotFound,
                )),
            };
            Traced {
                result,
                requests: Vec::new(),
            }
        })
    }

    fn limits(&self) -> &crate::oci::Limits {
        &self.limits
    }

    fn backoff_remaining(&self, _host: &str) -> Option<Duration> {
        None
    }
}

const CONTRACT: &str = r#"package provgate.contract

deny contains {"msg": "no SLSA provenance", "requirement": "slsa-provenance", "fix": "attach it"} if {
	not has_provenance
}

has_provenance if {
	some a in input.attestations
	a.predicateType == "https://slsa.dev/provenance/v1"
}
"#;

/// An engine over `script` with one enforced contract bound to every
/// namespace, `failure` as the registry's failure policy and `caches` as
/// the `cache:` settings.
fn engine(script: &Arc<Script>, failure: &str, caches: &str) -> (Engine, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("contracts/needs-provenance");
    std::fs::create_dir_all(&c).unwrap();
    std::fs::write(
        c.join("contract.yaml"),
        "name: needs-provenance\nversion: \"1\"\ndescription: test\nowner: tests\n\
         authorities:\n  - name: ci\n    keyless:\n      issuer: https://token.actions.githubusercontent.com\n      \
         subject: \"https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main\"\n",
    )
    .unwrap();
    std::fs::write(c.join("policy.rego"), CONTRACT).unwrap();
    let yaml = format!(
        "registries:\n  hosts:\n    \"{REGISTRY}\": {{failure: {failure}, lastKnownGoodWindow: 10m}}\n\
         contracts: {{builtin: false, dirs: [contracts]}}\n\
         bindings:\n  - name: all\n    contracts: [needs-provenance]\n    mode: enforce\n\
         cache: {caches}\n"
    );
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    let config = Config::load(&path).unwrap();
    let registry: Arc<dyn Registry> = script.clone();
    let engine = Engine::with_registry(
        config,
        registry,
        Arc::new(Metrics::new()),
        Arc::new(SystemClock),
    );
    (engine, dir)
}

/// A review of `image` in namespace `prod` by a pod of its own name.
fn request(image: &str, pod: &str, deadline: Option<Duration>) -> DecisionRequest {
    DecisionRequest {
        images: vec![ImageUse {
            image: image.into(),
            container: Some("app".into()),
            path: "/spec/containers/0/image".into(),
        }],
        context: RequestContext {
            source: Source::Admission,
            namespace: Some("prod".into()),
            kind: Some("Pod".into()),
            name: Some(pod.into()),
            ..Default::default()
        },
        deadline: deadline.map(|d| Instant::now() + d),
        contracts: None,
        capture_inputs: false,
    }
}

async fn decide_one(e: &Engine, image: &str, pod: &str) -> ImageDecision {
    let mut out = e.decide(&request(image, pod, None)).await;
    assert_eq!(out.len(), 1);
    out.remove(0)
}

const LONG_CACHES: &str = "{}";
const SHORT_CACHES: &str = "{tagTtl: 30ms, evidenceTtl: 30ms, negativeTtl: 30ms, transientNegativeTtl: 30ms, verdictTtl: 30ms}";

#[tokio::test]
async fn pods_of_one_image_resolve_and_discover_once() {
    let script = Script::new(Duration::ZERO);
    let (e, _dir) = engine(&script, "fail-closed", LONG_CACHES);
    for pod in ["web-7d4b9-abcde", "web-7d4b9-fghij", "web-7d4b9-klmno"] {
        let d = decide_one(&e, IMAGE, pod).await;
        assert_eq!(d.outcome, Outcome::Deny, "{d:?}");
        assert_eq!(d.digest, Some(digest()));
        assert!(d.error.is_none(), "{:?}", d.error);
    }
    assert_eq!(script.calls(), (1, 1));
}

#[tokio::test]
async fn a_burst_of_misses_shares_one_resolution_and_one_discovery() {
    let script = Script::new(Duration::from_millis(50));
    let (e, _dir) = engine(&script, "fail-closed", LONG_CACHES);
    let reqs: Vec<DecisionRequest> = (0..16)
        .map(|i| request(IMAGE, &format!("web-{i}"), None))
        .collect();
    let all = futures_util::future::join_all(reqs.iter().map(|r| e.decide(r))).await;
    assert!(all.iter().flatten().all(|d| d.outcome == Outcome::Deny));
    assert_eq!(script.calls(), (1, 1));
}

#[tokio::test]
async fn a_pinned_reference_is_judged_at_its_own_digest() {
    let script = Script::new(Duration::ZERO);
    let (e, _dir) = engine(&script, "fail-closed", LONG_CACHES);
    let pinned = Digest::sha256_of(b"another manifest");
    let d = decide_one(&e, &format!("reg.example/team/app@{pinned}"), "p").await;
    assert_eq!(d.digest, Some(pinned));
    assert_eq!(script.calls().1, 1);
}

#[tokio::test]
async fn an_outage_under_fail_closed_denies_and_asks_again_after_the_short_entry() {
    let script = Script::new(Duration::ZERO);
    let (e, _dir) = engine(&script, "fail-closed", SHORT_CACHES);
    script.set(Answer::Unavailable);
    let d = decide_one(&e, IMAGE, "a").await;
    assert_eq!(d.outcome, Outcome::Deny);
    let err = d.error.expect("the outage is the decision's error");
    assert!(err.message.contains("503"), "{}", err.message);
    assert!(d.degraded.is_none());
    // Within the transient entry: answered from it, no new request.
    let before = script.calls();
    let _ = decide_one(&e, IMAGE, "b").await;
    assert_eq!(script.calls(), before);
    // After it: the registry is asked again, and its recovery counts.
    tokio::time::sleep(Duration::from_millis(80)).await;
    script.set(Answer::Ok);
    let d = decide_one(&e, IMAGE, "c").await;
    assert!(d.error.is_none(), "{:?}", d.error);
    assert!(script.calls().0 > before.0);
}

#[tokio::test]
async fn an_outage_under_warn_allows_with_a_degraded_warning() {
    let script = Script::new(Duration::ZERO);
    let (e, _dir) = engine(&script, "warn", SHORT_CACHES);
    script.set(Answer::Unavailable);
    let d = decide_one(&e, IMAGE, "a").await;
    assert_eq!(d.outcome, Outcome::Warn, "{d:?}");
    let why = d.degraded.expect("a degraded decision says so");
    assert!(why.contains("failure policy warn"), "{why}");
}

#[tokio::test]
async fn an_outage_under_last_known_good_judges_the_evidence_seen_before() {
    let script = Script::new(Duration::ZERO);
    let (e, _dir) = engine(&script, "last-known-good", SHORT_CACHES);
    let first = decide_one(&e, IMAGE, "a").await;
    assert!(first.degraded.is_none());
    tokio::time::sleep(Duration::from_millis(80)).await;
    script.set(Answer::Unavailable);
    let d = decide_one(&e, IMAGE, "b").await;
    let why = d.degraded.as_deref().expect("judged on last-known-good");
    assert!(why.contains("last-known-good"), "{why}");
    assert_eq!(d.digest, first.digest);
    // The old evidence has no provenance: the contract still denies.
    assert_eq!(d.outcome, Outcome::Deny);
}

#[tokio::test]
async fn a_permanent_failure_never_degrades() {
    let script = Script::new(Duration::ZERO);
    let (e, _dir) = engine(&script, "warn", SHORT_CACHES);
    script.set(Answer::NotFound);
    let d = decide_one(&e, IMAGE, "a").await;
    assert_eq!(d.outcome, Outcome::Deny, "{d:?}");
    assert!(d.degraded.is_none());
    assert!(d.error.is_some());
}

#[tokio::test]
async fn the_deadline_answers_without_waiting_for_a_slow_registry() {
    let script = Script::new(Duration::from_secs(5));
    let (e, _dir) = engine(&script, "fail-closed", LONG_CACHES);
    let started = Instant::now();
    let out = e
        .decide(&request(IMAGE, "a", Some(Duration::from_millis(100))))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out[0].outcome, Outcome::Deny);
    let err = out[0].error.as_ref().expect("the deadline is the error");
    assert!(err.message.contains("deadline"), "{}", err.message);
}
