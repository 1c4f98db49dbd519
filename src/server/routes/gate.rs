//! The CI gate: `POST /v1/gate` and `GET /v1/report`.
//!
//! Same engine, caches and wording as admission; the differences are the
//! ones a network-reachable API needs: every call is authenticated
//! ([`crate::gate::auth`]), rate-limited per caller, bounded in body size,
//! body read time and image count, and a caller may choose a contract set
//! only if its token or OIDC issuer entry permits those contracts. For
//! allowed images the gate can return a signed VSA ([`crate::gate::vsa`]).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{FromRef, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use std::sync::Arc;

use super::{AppState, gate_deadline_of};
use crate::engine::decision::{ImageDecision, Outcome};
use crate::engine::{DecisionRequest, Engine, ImageUse};
use crate::gate::auth::{self, JwksCache, RateLimiter};
use crate::gate::vsa::{PolicyEntry, VsaSigner};
use crate::gate::{GateSettings, GateSpec};
use crate::metrics::{EndpointLabels, RequestLabels, observe};
use crate::policy::RequestContext;
use crate::report::continuous::LiveReport;
use crate::respond::decision_log::DecisionLog;
use crate::respond::decision_log::DecisionRecord;
use crate::respond::json::{GateRequest, GateResponse, ImageReport};

/// The gate's state that outlives configuration reloads.
#[derive(Debug)]
pub struct Gate {
    jwks: JwksCache,
    limiter: Mutex<RateLimiter>,
    limiter_rate: Mutex<u32>,
}

impl Gate {
    /// The gate of an engine.
    pub fn new(engine: &Engine) -> Self {
        let rate = engine.runtime().config.spec.gate.rate_limit_per_minute;
        Gate {
            jwks: JwksCache::default(),
            limiter: Mutex::new(RateLimiter::new(rate)),
            limiter_rate: Mutex::new(rate),
        }
    }

    fn take(&self, rate: u32, who: &str) -> Result<(), u64> {
        if let (Ok(mut r), Ok(mut l)) = (self.limiter_rate.lock(), self.limiter.lock()) {
            if *r != rate {
                *l = RateLimiter::new(rate);
                *r = rate;
            }
            return l.take(who);
        }
        Err(1)
    }
}

/// What the gate's handlers use of the server's state: the engine, the
/// decision log, the gate's own limiter and keys, and the continuous report
/// (for `GET /v1/report`). Readiness and the admission paths are not
/// theirs.
#[derive(Clone)]
pub struct GateState {
    engine: Arc<Engine>,
    log: Arc<DecisionLog>,
    gate: Arc<Gate>,
    live_report: Option<Arc<LiveReport>>,
}

impl FromRef<AppState> for GateState {
    fn from_ref(s: &AppState) -> Self {
        GateState {
            engine: s.engine.clone(),
            log: s.log.clone(),
            gate: s.gate.clone(),
            live_report: s.live_report.clone(),
        }
    }
}

/// The gate's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/gate", post(gate))
        .route("/v1/report", axum::routing::get(report))
}

/// A JSON error body: `{"error": …}`.
fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({"error": message}))).into_response()
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(serde_json::json!({"error": "unauthorized"})),
    )
        .into_response()
}

fn count(s: &GateState, result: &str) {
    s.engine
        .metrics()
        .requests
        .get_or_create(&RequestLabels {
            endpoint: "gate".into(),
            result: result.into(),
        })
        .inc();
}

/// `POST /v1/gate`, in the order a refusal is decided: authenticate, rate
/// limit, read and check the request, check a chosen contract set, judge,
/// sign VSAs for what passed, answer and log.
async fn gate(State(s): State<GateState>, req: Request) -> Response {
    let started = Instant::now();
    let rt = s.engine.runtime();
    let spec = rt.config.spec.gate.clone();
    let settings = rt.config.gate.clone();
    drop(rt);

    // (1) Authenticate.
    let headers: HeaderMap = req.headers().clone();
    let caller = match authenticate(&s, &settings, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };

    // (2) Rate limit per caller.
    if let Err(retry) = s.gate.take(spec.rate_limit_per_minute, &caller.identity) {
        count(&s, "rate-limited");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry.to_string())],
            axum::Json(
                serde_json::json!({"error": "rate limit exceeded", "retryAfterSeconds": retry}),
            ),
        )
            .into_response();
    }

    // (3) The body, within its size limit and read timeout.
    let request = match read_request(&s, &spec, req).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    // (4) A chosen contract set must be permitted, and known.
    if let Some(r) = refuse_selection(&s, &caller, &request) {
        return r;
    }

    // (5) Judge.
    let decision_request = decision_request(&s, &request, &caller);
    if let Err(r) = check_bound(&s, &decision_request).await {
        return r;
    }
    let decisions = s.engine.decide(&decision_request).await;
    let now = s.engine.clock().now();
    let mut reports: Vec<ImageReport> = decisions
        .iter()
        .map(|d| ImageReport::from_decision(d, false))
        .collect();
    if let Some(signer) = &settings.vsa {
        sign_vsas(signer, &decisions, &mut reports, now);
    }
    let response = GateResponse::new(reports, Some(caller.identity.clone()));
    count(
        &s,
        if response.allowed {
            "allowed"
        } else {
            "denied"
        },
    );
    observe(
        &s.engine
            .metrics()
            .decision_seconds
            .get_or_create(&EndpointLabels {
                endpoint: "gate".into(),
            }),
        started.elapsed(),
    );
    if s.log.enabled() {
        s.log.write(&DecisionRecord::new(
            now,
            "gate",
            None,
            Some(caller.identity),
            response.allowed,
            &decisions,
        ));
    }
    axum::Json(response).into_response()
}

/// The request body, read within `server.maxBodyBytes` and
/// `gate.bodyTimeout`, parsed and checked (version, image count); the `Err`
/// is the answer to send.
async fn read_request(
    s: &GateState,
    spec: &GateSpec,
    req: Request,
) -> Result<GateRequest, Response> {
    let invalid = |status: StatusCode, message: &str| {
        count(s, "invalid");
        error(status, message)
    };
    let limit = s.engine.runtime().config.spec.server.max_body_bytes;
    let body = match tokio::time::timeout(
        spec.body_timeout.0,
        axum::body::to_bytes(req.into_body(), limit),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return Err(invalid(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body larger than server.maxBodyBytes ({limit} bytes)"),
            ));
        }
        Err(_) => {
            return Err(invalid(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "request body not received within gate.bodyTimeout ({} ms)",
                    spec.body_timeout.0.as_millis()
                ),
            ));
        }
    };
    let request: GateRequest = serde_json::from_slice(&body).map_err(|e| {
        invalid(
            StatusCode::BAD_REQUEST,
            &format!("invalid gate request: {e}"),
        )
    })?;
    if let Some(v) = &request.api_version
        && v != crate::respond::json::GATE_V1
    {
        return Err(invalid(
            StatusCode::BAD_REQUEST,
            &format!(
                "unsupported apiVersion {v:?}; use {}",
                crate::respond::json::GATE_V1
            ),
        ));
    }
    if request.images.is_empty() {
        return Err(invalid(StatusCode::BAD_REQUEST, "images must not be empty"));
    }
    if request.images.len() > spec.max_images {
        return Err(invalid(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "{} images, more than gate.maxImages ({})",
                request.images.len(),
                spec.max_images
            ),
        ));
    }
    Ok(request)
}

/// The refusal of a chosen contract set, if any: it must be permitted to
/// the caller, and known.
fn refuse_selection(
    s: &GateState,
    caller: &auth::Caller,
    request: &GateRequest,
) -> Option<Response> {
    let names = request.contracts.as_ref()?;
    let rt = s.engine.runtime();
    for n in names {
        if !caller.contracts.contains(n) {
            count(s, "forbidden");
            return Some(error(
                StatusCode::FORBIDDEN,
                &format!("caller may not choose contract {n:?}"),
            ));
        }
        if !rt.config.contracts.contains_key(n) {
            count(s, "invalid");
            return Some(error(
                StatusCode::BAD_REQUEST,
                &format!("unknown contract {n:?}"),
            ));
        }
    }
    if names.is_empty() {
        count(s, "invalid");
        return Some(error(
            StatusCode::BAD_REQUEST,
            "contracts must not be empty",
        ));
    }
    None
}

/// What the engine judges for a gate call: its images, bare, in the
/// context the caller describes, as the caller.
fn decision_request(
    s: &GateState,
    request: &GateRequest,
    caller: &auth::Caller,
) -> DecisionRequest {
    let ctx = &request.context;
    DecisionRequest {
        images: request.images.iter().map(|i| ImageUse::bare(i)).collect(),
        context: RequestContext {
            source: crate::policy::Source::Gate,
            namespace: ctx.namespace.clone(),
            kind: ctx.kind.clone(),
            name: ctx.name.clone(),
            container: None,
            operation: None,
            labels: ctx.labels.clone(),
            namespace_labels: Default::default(),
            user: Some(caller.identity.clone()),
        },
        deadline: Some(Instant::now() + gate_deadline_of(&s.engine)),
        contracts: request.contracts.clone(),
        capture_inputs: false,
    }
}

/// A selection only narrows what admission would bind for the same images
/// and context; naming a contract that is not bound is an error, never a
/// fallback to the contract's own defaults.
async fn check_bound(s: &GateState, decision_request: &DecisionRequest) -> Result<(), Response> {
    let Some((image, contract)) = s.engine.unbound_selection(decision_request).await else {
        return Ok(());
    };
    count(s, "invalid");
    Err(error(
        StatusCode::BAD_REQUEST,
        &format!(
            "contract {contract:?} is not bound to {image} in this context (namespace {}, kind {}); \
             `contracts` may only narrow the contracts the bindings apply, as admission would",
            decision_request
                .context
                .namespace
                .as_deref()
                .unwrap_or("(none)"),
            decision_request.context.kind.as_deref().unwrap_or("(none)"),
        ),
    ))
}

/// Attaches a signed VSA to each report of an image allowed with every
/// contract evaluated: never a "PASSED" summary for evidence that could
/// not be fetched. A signing failure is logged and leaves the report
/// without one.
fn sign_vsas(
    signer: &VsaSigner,
    decisions: &[ImageDecision],
    reports: &mut [ImageReport],
    now: jiff::Timestamp,
) {
    for (d, r) in decisions.iter().zip(reports.iter_mut()) {
        if d.outcome == Outcome::Deny || r.status != crate::respond::json::ImageStatus::Allowed {
            continue;
        }
        let (Some(digest), Some(reference)) = (&d.digest, &d.reference) else {
            continue;
        };
        let name = reference
            .split_once('@')
            .map(|(n, _)| n)
            .unwrap_or(reference);
        let name = strip_tag(name);
        let policy: Vec<PolicyEntry> = d
            .contracts
            .iter()
            .map(|c| PolicyEntry {
                name: c.name.clone(),
                version: c.version.clone(),
                revision: c.revision.clone(),
            })
            .collect();
        let mut inputs: Vec<crate::digest::Digest> = d
            .contracts
            .iter()
            .flat_map(|c| c.evidence_used.iter().cloned())
            .collect();
        inputs.sort();
        inputs.dedup();
        let statement = signer.statement(name, digest, &policy, &inputs, now);
        match signer.sign(&statement) {
            Ok(bundle) => r.vsa = Some(bundle),
            Err(e) => tracing::error!(error = %e, "cannot sign a VSA"),
        }
    }
}

/// Authenticates a request like the gate does; the `Err` is the 401 to send.
async fn authenticate(
    s: &GateState,
    settings: &GateSettings,
    headers: &HeaderMap,
) -> Result<auth::Caller, Response> {
    let authz = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let now_unix = s.engine.clock().now().as_second().max(0) as u64;
    let sources = settings.auth.jwks_sources();
    let min_refresh = s.engine.runtime().config.spec.gate.jwks_min_refresh.0;
    let refresh = |url: &str| {
        let source = sources.iter().find(|j| j.url == url).cloned();
        let cache = &s.gate.jwks;
        async move {
            let Some(source) = source else { return };
            if !cache.may_fetch(&source.url, min_refresh) {
                return;
            }
            if let Err(e) = cache.refresh(&source).await {
                tracing::warn!(url = %source.url, error = %e, "cannot fetch JWKS");
            }
        }
    };
    // A stale set is refreshed before use (at most once per jwksMinRefresh).
    let looks_like_jwt = authz.is_some_and(|a| a.matches('.').count() == 2);
    if looks_like_jwt {
        for source in &sources {
            if s.gate.jwks.stale(&source.url) {
                refresh(&source.url).await;
            }
        }
    }
    let mut result = settings
        .auth
        .authenticate(authz, now_unix, &|u| s.gate.jwks.get(u));
    // A key id the cached set lacks: keys rotate, fetch once more.
    if let Err(auth::AuthError::JwksNeeded(url)) = &result {
        refresh(url).await;
        result = settings
            .auth
            .authenticate(authz, now_unix, &|u| s.gate.jwks.get(u));
    }
    result.map_err(|e| {
        // The reason is logged; the caller learns nothing about which part
        // failed. The token itself is never logged.
        tracing::info!(reason = %e, "gate call refused");
        count(s, "unauthorized");
        unauthorized()
    })
}

/// `GET /v1/report`: the latest continuous compliance report, for the same
/// callers as the gate. Only the elected replica has one: the others answer
/// 503 `{"error": "not the leader", "leader": <identity or null>}` with a
/// `Retry-After` (through a Service, a retry may reach the leader).
async fn report(State(s): State<GateState>, headers: HeaderMap) -> Response {
    use crate::report::continuous::Answer;
    let settings = s.engine.runtime().config.gate.clone();
    if let Err(r) = authenticate(&s, &settings, &headers).await {
        return r;
    }
    let Some(live) = s.live_report.as_ref() else {
        return error(
            StatusCode::NOT_FOUND,
            "continuous reporting is off (report.continuous.enabled)",
        );
    };
    let retry_after = |d: Duration| {
        // Whole seconds, rounded up, at least 1.
        let secs = d.as_millis().div_ceil(1000).max(1);
        (header::RETRY_AFTER, secs.to_string())
    };
    match live.answer() {
        Answer::Ready(r) => axum::Json(r.as_ref().clone()).into_response(),
        Answer::NotReady => (
            StatusCode::SERVICE_UNAVAILABLE,
            [retry_after(std::time::Duration::from_secs(1))],
            axum::Json(serde_json::json!({"error": "the first report is not ready yet"})),
        )
            .into_response(),
        Answer::NotLeader {
            leader,
            retry_after: after,
        } => (
            StatusCode::SERVICE_UNAVAILABLE,
            [retry_after(after)],
            axum::Json(serde_json::json!({"error": "not the leader", "leader": leader})),
        )
            .into_response(),
    }
}

/// `registry/repo` of `registry/repo:tag`.
fn strip_tag(name: &str) -> &str {
    match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => &name[..i],
        _ => name,
    }
}
