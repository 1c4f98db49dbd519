//! The HTTP surface: small handlers composed into one router.
//!
//! Layer order (outermost first): the body limit, then the handlers. The
//! admission handlers answer within the request's deadline by themselves
//! (the engine applies the failure policy at the deadline), so there is no
//! blanket timeout that would turn a late answer into a connection reset.

mod gate;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::admission::{self, Deadline, Endpoint};
use crate::engine::Engine;
use crate::metrics::{EndpointLabels, RequestLabels, observe};
use crate::respond::decision_log::{DecisionLog, DecisionRecord};
pub use gate::Gate;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The engine every judging route asks.
    pub engine: Arc<Engine>,
    /// Where every answer (admission and gate) is recorded.
    pub log: Arc<DecisionLog>,
    /// Set once the server listens and its certificate is loaded; `/readyz`
    /// answers 503 until then and during shutdown.
    pub ready: Arc<AtomicBool>,
    /// The CI gate (authentication, limits, VSA signing).
    pub gate: Arc<Gate>,
    /// The continuous compliance report, when enabled.
    pub live_report: Option<Arc<crate::report::continuous::LiveReport>>,
}

impl AppState {
    /// State over an engine.
    pub fn new(engine: Arc<Engine>, log: Arc<DecisionLog>, ready: Arc<AtomicBool>) -> Self {
        let gate = Arc::new(Gate::new(&engine));
        AppState {
            engine,
            log,
            ready,
            gate,
            live_report: None,
        }
    }
}

/// The HTTPS router.
pub fn app(state: AppState, noop: bool) -> Router {
    let body_limit = state.engine.runtime().config.spec.server.max_body_bytes;
    let mut router = Router::new()
        .route("/validate", post(validate))
        .route("/mutate", post(mutate))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(gate::routes());
    if noop {
        router = router.route("/noop/validate", post(noop_validate));
    }
    router
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// The plain-HTTP metrics router.
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<AppState>) -> Response {
    if s.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.engine.metrics().encode(),
    )
        .into_response()
}

async fn validate(State(s): State<AppState>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    handle(s, Endpoint::Validate, q, body).await
}

async fn mutate(State(s): State<AppState>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    handle(s, Endpoint::Mutate, q, body).await
}

async fn handle(s: AppState, endpoint: Endpoint, query: Option<String>, body: Bytes) -> Response {
    let started = Instant::now();
    let rt = s.engine.runtime();
    let adm = &rt.config.spec.admission;
    let deadline = Deadline {
        timeout: admission::parse_timeout(query.as_deref()).unwrap_or(adm.default_timeout.0),
        margin: adm.deadline_margin.0,
    };
    drop(rt);
    let reviewed = admission::review(&s.engine, &body, endpoint, deadline).await;
    let result = if reviewed.meta.is_none() {
        "invalid"
    } else if reviewed.allowed {
        "allowed"
    } else {
        "denied"
    };
    let metrics = s.engine.metrics();
    metrics
        .requests
        .get_or_create(&RequestLabels {
            endpoint: endpoint.as_str().into(),
            result: result.into(),
        })
        .inc();
    observe(
        &metrics.decision_seconds.get_or_create(&EndpointLabels {
            endpoint: endpoint.as_str().into(),
        }),
        started.elapsed(),
    );
    // The mutating webhook's verdicts are logged by the validating one,
    // which sees the final object; only validation is a deploy decision.
    if endpoint == Endpoint::Validate && s.log.enabled() {
        let mut record = DecisionRecord::new(
            s.engine.clock().now(),
            endpoint.as_str(),
            reviewed.meta.clone(),
            None,
            reviewed.allowed,
            &reviewed.decisions,
        );
        record.skipped = reviewed.skipped.clone();
        s.log.write(&record);
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        admission::to_wire_body(&reviewed.review),
    )
        .into_response()
}

/// Parses the review like `/validate` and answers a denial without judging:
/// the baseline of the admission benchmark. Denying keeps it harmless if it
/// is ever registered as a webhook by mistake.
async fn noop_validate(body: Bytes) -> Response {
    let review: Result<kube::core::admission::AdmissionReview<kube::core::DynamicObject>, _> =
        serde_json::from_slice(&body);
    let response = match review.map(|r| r.try_into()) {
        Ok(Ok(req)) => {
            let req: kube::core::admission::AdmissionRequest<kube::core::DynamicObject> = req;
            let object = req
                .object
                .as_ref()
                .and_then(|o| serde_json::to_value(o).ok())
                .unwrap_or_default();
            let n = admission::images::images_of(&req.kind.kind, &object)
                .ok()
                .flatten()
                .map_or(0, |v| v.len());
            kube::core::admission::AdmissionResponse::from(&req)
                .deny(format!("no-op benchmark endpoint ({n} images parsed)"))
        }
        _ => kube::core::admission::AdmissionResponse::invalid("unreadable AdmissionReview"),
    };
    axum::Json(response.into_review()).into_response()
}

/// The request deadline default for the gate.
fn gate_deadline_of(engine: &Engine) -> Duration {
    engine.runtime().config.spec.admission.default_timeout.0
}
