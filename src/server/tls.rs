//! Serving certificates: loaded from PEM files and hot-reloaded.
//!
//! cert-manager and the kubelet replace mounted Secrets by swapping a
//! symlink, which file-event watchers see as remove/create pairs; polling
//! the bytes is simpler and cannot miss a swap. A pair that fails to load
//! (half-written, key not matching) is logged and counted, and the old
//! certificate keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use sha2::Digest as _;

use super::ServeError;
use crate::metrics::{Metrics, ResultLabels};

/// Loads a certificate chain and key.
pub async fn load(cert: &Path, key: &Path) -> Result<RustlsConfig, ServeError> {
    RustlsConfig::from_pem_file(cert, key).await.map_err(|e| {
        ServeError::Tls(format!(
            "cannot load {} / {}: {e}",
            cert.display(),
            key.display()
        ))
    })
}

fn fingerprint(cert: &Path, key: &Path) -> Option<Vec<u8>> {
    let mut h = sha2::Sha256::new();
    h.update(std::fs::read(cert).ok()?);
    h.update(std::fs::read(key).ok()?);
    Some(h.finalize().to_vec())
}

/// Polls the files and reloads `config` when they change.
pub fn watch(
    config: RustlsConfig,
    cert: PathBuf,
    key: PathBuf,
    every: Duration,
    metrics: Arc<Metrics>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = fingerprint(&cert, &key);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = fingerprint(&cert, &key);
            if now.is_none() || now == last {
                continue;
            }
            match config.reload_from_pem_file(&cert, &key).await {
                Ok(()) => {
                    tracing::info!(cert = %cert.display(), "serving certificate reloaded");
                    metrics
                        .reloads
                        .get_or_create(&ResultLabels {
                            result: "tls-success".into(),
                        })
                        .inc();
                    last = now;
                }
                Err(e) => {
                    // Keep the old pair; retry on the next change (or tick,
                    // if the files are still being written).
                    tracing::error!(error = %e, cert = %cert.display(), "new serving certificate rejected; keeping the old one");
                    metrics
                        .reloads
                        .get_or_create(&ResultLabels {
                            result: "tls-failure".into(),
                        })
                        .inc();
                    last = now;
                }
            }
        }
    })
}
