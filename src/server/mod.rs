//! `provgate serve`: the HTTPS admission webhook and gate.
//!
//! Order of start-up (linkerd2-proxy's): logging, configuration compiled
//! completely (a bad one exits before any port is bound), the engine built
//! with the metrics registry, then the listeners. `/readyz` turns ready once
//! the listeners are bound with compiled contracts and loaded trust roots,
//! and turns unready again when shutdown starts, so the Service stops
//! routing before in-flight reviews are drained.
//!
//! Certificates, the configuration file and everything it points at
//! (contracts, trusted roots, keys, credential files) are polled; a change
//! is compiled in full and swapped in, or rejected with an error log and a
//! metric while the old one keeps serving.

pub mod dev_certs;
mod reload;
mod routes;
mod tls;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum_server::Handle;

use crate::clock::{Clock, SystemClock};
use crate::config::ConfigError;
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::respond::decision_log::DecisionLog;

pub use routes::{AppState, Gate, app, metrics_app};

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The configuration file; `None` runs on embedded defaults.
    pub config: Option<PathBuf>,
    /// Overrides `server.listen`.
    pub listen: Option<String>,
    /// Where a development certificate is generated when none is configured.
    pub dev_cert_dir: PathBuf,
    /// Serve `POST /noop/validate` (parses the review and denies; for
    /// benchmarks only).
    pub noop_endpoint: bool,
    /// How often files are polled for changes.
    pub poll_interval: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            config: None,
            listen: None,
            dev_cert_dir: PathBuf::from("certs/dev"),
            noop_endpoint: false,
            poll_interval: Duration::from_secs(2),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The configuration does not compile.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// TLS material is unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// Continuous reporting could not start.
    #[error("continuous reporting: {0}")]
    Report(String),
    /// The decision log could not be opened.
    #[error("decision log: {0}")]
    DecisionLog(std::io::Error),
}

/// A server that is listening: its addresses, its engine, and what
/// [`Running::shutdown`] needs to drain it.
pub struct Running {
    /// The HTTPS address.
    pub addr: SocketAddr,
    /// The plain-HTTP metrics address, when configured.
    pub metrics_addr: Option<SocketAddr>,
    /// The engine answering every route (reloads swap its runtime, not
    /// the engine).
    pub engine: Arc<Engine>,
    /// The continuous report, when enabled.
    pub live_report: Option<Arc<crate::report::continuous::LiveReport>>,
    /// The CA certificate to trust when a development certificate was
    /// generated.
    pub dev_ca: Option<PathBuf>,
    handle: Handle<SocketAddr>,
    metrics_handle: Option<Handle<SocketAddr>>,
    ready: Arc<AtomicBool>,
    grace: Duration,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("addr", &self.addr).finish()
    }
}

impl Running {
    /// Starts a graceful shutdown: unready, stop accepting, drain in-flight
    /// requests within the grace period; returns when done.
    pub async fn shutdown(self) {
        self.ready.store(false, Ordering::SeqCst);
        // The continuous report stops first and hands its lease over, so
        // another replica takes over while this one drains.
        if let Some(live) = &self.live_report {
            live.shutdown().await;
        }
        self.handle.graceful_shutdown(Some(self.grace));
        if let Some(h) = &self.metrics_handle {
            h.graceful_shutdown(Some(self.grace));
        }
        let _ = self.server.await;
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Starts the server; returns once it listens.
pub async fn start(opts: ServeOptions) -> Result<Running, ServeError> {
    start_with_clock(opts, Arc::new(SystemClock)).await
}

/// [`start`] with an injected clock (tests).
pub async fn start_with_clock(
    opts: ServeOptions,
    clock: Arc<dyn Clock>,
) -> Result<Running, ServeError> {
    // A provider chosen once: no crate enabling ring later can make rustls
    // ambiguous at runtime.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = crate::config::load(opts.config.as_deref())?;
    let spec = config.spec.server.clone();
    let base = opts
        .config
        .as_deref()
        .and_then(|p| p.parent())
        .unwrap_or(std::path::Path::new("."))
        .to_owned();
    let log = DecisionLog::from_spec(&config.spec.decision_log, &base)
        .map_err(ServeError::DecisionLog)?;
    let metrics = Arc::new(Metrics::new());
    let engine = Arc::new(Engine::new(config, metrics.clone(), clock));
    let ready = Arc::new(AtomicBool::new(false));

    let (cert, key, dev_ca) = certificate_files(&base, &opts.dev_cert_dir, spec.tls.as_ref())?;
    let rustls_config = tls::load(&cert, &key).await?;

    let mut state = AppState::new(engine.clone(), Arc::new(log), ready.clone());
    let mut tasks = Vec::new();
    let admission = engine.runtime().config.spec.admission.clone();
    if admission.trust_namespace_labels {
        match crate::report::inventory::client(admission.api_server.as_deref()).await {
            Ok(client) => engine.set_namespace_labels(
                crate::engine::namespaces::NamespaceLabels::new(client, Duration::from_secs(60)),
            ),
            // Without a source, label-selected bindings match nothing: the
            // images they would cover fall to `unmatched`.
            Err(e) => {
                tracing::error!(error = %e, "admission.trustNamespaceLabels is on but the Kubernetes API is unavailable")
            }
        }
    }
    let continuous = engine.runtime().config.spec.report.continuous.clone();
    if continuous.enabled {
        let live = crate::report::continuous::start(engine.clone())
            .await
            .map_err(|e| ServeError::Report(e.to_string()))?;
        state.live_report = Some(live);
    }
    let state_live = state.live_report.clone();
    let router = app(state.clone(), opts.noop_endpoint);

    let listen = opts.listen.clone().unwrap_or(spec.listen.clone());
    let (std_listener, addr) = bind(&listen)?;
    let handle: Handle<SocketAddr> = Handle::new();
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(rustls_config.clone())
        .handshake_timeout(Duration::from_secs(10));
    let mut server = axum_server::from_tcp(std_listener)
        .map_err(|e| ServeError::Bind {
            addr: listen.clone(),
            reason: e.to_string(),
        })?
        .acceptor(acceptor)
        .handle(handle.clone())
        // Slowloris: a connection must send its first request promptly,
        // and headers within a bound on every request.
        .first_request_timeout(Duration::from_secs(10));
    server
        .http_builder()
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { server.serve(service).await });

    let (metrics_handle, metrics_addr) = match &spec.metrics_listen {
        Some(m) => {
            let (h, a) = serve_metrics(m, state.clone())?;
            (Some(h), Some(a))
        }
        None => (None, None),
    };

    tasks.push(tls::watch(
        rustls_config,
        cert,
        key,
        opts.poll_interval,
        metrics.clone(),
    ));
    if let Some(path) = opts.config.clone() {
        tasks.push(reload::watch(engine.clone(), path, opts.poll_interval));
    }
    ready.store(true, Ordering::SeqCst);
    // Plain values only: a log line never shows Rust's `Some(…)`/`None`.
    match metrics_addr {
        Some(m) => tracing::info!(%addr, metrics = %m, "provgate is serving"),
        None => tracing::info!(%addr, metrics = "off", "provgate is serving"),
    }
    warn_about_config(&engine);
    Ok(Running {
        addr,
        metrics_addr,
        engine,
        live_report: state_live,
        dev_ca,
        handle,
        metrics_handle,
        ready,
        grace: spec.shutdown_grace.0,
        tasks,
        server,
    })
}

/// The server's certificate and key: `server.tls`'s files (relative to
/// `base`, the configuration file's directory), or a generated development
/// certificate, whose CA comes third.
fn certificate_files(
    base: &std::path::Path,
    dev_cert_dir: &std::path::Path,
    tls: Option<&crate::config::TlsSpec>,
) -> Result<(PathBuf, PathBuf, Option<PathBuf>), ServeError> {
    Ok(match tls {
        Some(t) => {
            let abs = |p: &std::path::Path| {
                if p.is_absolute() {
                    p.to_owned()
                } else {
                    base.join(p)
                }
            };
            (abs(&t.cert_file), abs(&t.key_file), None)
        }
        None => {
            let files = crate::server::dev_certs::generate(
                &crate::server::dev_certs::dev_names(),
                dev_cert_dir,
            )
            .map_err(|e| ServeError::Tls(e.to_string()))?;
            tracing::warn!(
                cert = %files.cert.display(),
                ca = %files.ca.display(),
                "no server.tls configured: serving a generated development certificate; trust its CA"
            );
            (files.cert, files.key, Some(files.ca))
        }
    })
}

/// A listener on `listen` (`host:port`; port 0 picks one), and the address
/// it got.
fn bind(listen: &str) -> Result<(std::net::TcpListener, SocketAddr), ServeError> {
    let failed = |reason: String| ServeError::Bind {
        addr: listen.to_owned(),
        reason,
    };
    let addr: SocketAddr = listen.parse().map_err(|e| failed(format!("{e}")))?;
    let listener = std::net::TcpListener::bind(addr).map_err(|e| failed(e.to_string()))?;
    let _ = listener.set_nonblocking(true);
    let addr = listener.local_addr().map_err(|e| failed(e.to_string()))?;
    Ok((listener, addr))
}

/// Serves `/metrics` over plain HTTP on `listen`.
fn serve_metrics(
    listen: &str,
    state: AppState,
) -> Result<(Handle<SocketAddr>, SocketAddr), ServeError> {
    let (l, addr) = bind(listen)?;
    let h: Handle<SocketAddr> = Handle::new();
    let srv = axum_server::from_tcp(l)
        .map_err(|e| ServeError::Bind {
            addr: listen.to_owned(),
            reason: e.to_string(),
        })?
        .handle(h.clone());
    let mapp = metrics_app(state);
    tokio::spawn(async move {
        let _ = srv.serve(mapp.into_make_service()).await;
    });
    Ok((h, addr))
}

/// Warns at start about a configuration that works but is probably not
/// what the operator wants: a gate nobody can call, world-trusting
/// authorities.
fn warn_about_config(engine: &Engine) {
    let gate = &engine.runtime().config.spec.gate;
    if gate.tokens.is_empty() && gate.oidc.is_empty() {
        tracing::warn!(
            "the CI gate (POST /v1/gate) has no gate.tokens and no gate.oidc configured: it answers 401 to every call; add a token to the configuration (docs/gate-api.md)"
        );
    }
    for w in engine.runtime().config.world_trusting() {
        tracing::warn!(
            binding = %w.binding,
            contract = %w.contract,
            authority = %w.authority,
            mode = w.mode.as_str(),
            "authority trusts any {} identity: anyone who builds in a repository of their own passes; for demonstration only ({} mode), never for enforce",
            w.issuer,
            w.mode.as_str()
        );
    }
}

/// Runs until SIGTERM or SIGINT, then drains.
pub async fn run(opts: ServeOptions) -> Result<(), ServeError> {
    let running = start(opts).await?;
    if let Some(ca) = &running.dev_ca {
        // Never panic on a closed stderr: the log pipe is not the server.
        let _ = writeln!(
            std::io::stderr(),
            "provgate: serving https://{} with a development certificate; CA: {}",
            running.addr,
            ca.display()
        );
    }
    let signal = wait_for_signal().await;
    tracing::info!(signal, "shutting down: draining in-flight requests");
    running.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return "SIGINT";
            }
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}
