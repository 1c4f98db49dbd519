//! Configuration hot reload.
//!
//! Every poll hashes the configuration file and everything it points at:
//! contract directories, trusted roots, key files, credential files and CA
//! bundles. On a change the whole configuration is compiled again; only a
//! configuration that compiles replaces the running one. A Kubernetes
//! ConfigMap update (a `..data` symlink swap) is seen as a change of bytes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::Digest as _;

use crate::config::{Config, ConfigSpec};
use crate::engine::Engine;
use crate::metrics::ResultLabels;

/// Files larger than this are not hashed (the compiler rejects them anyway).
const MAX_HASHED: u64 = 64 * 1024 * 1024;

fn hash_path(h: &mut sha2::Sha256, path: &Path, depth: usize) {
    let Ok(meta) = std::fs::metadata(path) else {
        h.update(b"missing");
        return;
    };
    if meta.is_dir() {
        if depth > 4 {
            return;
        }
        let Ok(entries) = std::fs::read_dir(path) else {
            return;
        };
        let mut names: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            // ConfigMap mounts: `..data` and `..2026_…` are the real files'
            // parents; the visible names are symlinks into them.
            .filter(|p| {
                !p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
            })
            .collect();
        names.sort();
        for p in names {
            h.update(p.to_string_lossy().as_bytes());
            hash_path(h, &p, depth + 1);
        }
    } else if meta.len() <= MAX_HASHED
        && let Ok(bytes) = std::fs::read(path)
    {
        h.update(&bytes);
    }
}

/// A digest over the configuration file and every file it references.
pub fn inputs_fingerprint(path: &Path) -> Vec<u8> {
    let mut h = sha2::Sha256::new();
    hash_path(&mut h, path, 0);
    let base = path.parent().unwrap_or(Path::new("."));
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_owned()
        } else {
            base.join(p)
        }
    };
    if let Ok(text) = std::fs::read_to_string(path)
        && let Ok(spec) = serde_yaml_ng::from_str::<ConfigSpec>(&text)
    {
        let mut files: Vec<PathBuf> = Vec::new();
        files.extend(spec.contracts.dirs.iter().map(|d| resolve(d)));
        files.extend(spec.trust.roots.iter().map(|r| resolve(&r.path)));
        files.extend(
            spec.trust
                .keys
                .iter()
                .filter_map(|k| k.path.as_deref().map(resolve)),
        );
        files.extend(spec.credentials.iter().map(|c| resolve(&c.file)));
        files.extend(
            spec.registries
                .hosts
                .values()
                .chain(std::iter::once(&spec.registries.defaults))
                .filter_map(|r| r.ca_file.as_deref().map(resolve)),
        );
        for f in files {
            h.update(f.to_string_lossy().as_bytes());
            hash_path(&mut h, &f, 0);
        }
    }
    h.finalize().to_vec()
}

/// Polls `path` and reloads `engine` on change.
pub fn watch(engine: Arc<Engine>, path: PathBuf, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = inputs_fingerprint(&path);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let p = path.clone();
            let Ok(now) = tokio::task::spawn_blocking(move || inputs_fingerprint(&p)).await else {
                continue;
            };
            if now == last {
                continue;
            }
            last = now;
            let p = path.clone();
            let compiled = tokio::task::spawn_blocking(move || Config::load(&p)).await;
            let metrics = engine.metrics().clone();
            match compiled {
                Ok(Ok(config)) => {
                    let fp = config.fingerprint.clone();
                    engine.reload(config);
                    metrics
                        .reloads
                        .get_or_create(&ResultLabels {
                            result: "success".into(),
                        })
                        .inc();
                    tracing::info!(config = %path.display(), fingerprint = %fp, "configuration reloaded");
                }
                Ok(Err(e)) => {
                    metrics
                        .reloads
                        .get_or_create(&ResultLabels {
                            result: "failure".into(),
                        })
                        .inc();
                    tracing::error!(config = %path.display(), error = %e, "new configuration rejected; the previous one keeps serving");
                }
                Err(e) => {
                    tracing::error!(error = %e, "configuration reload task failed");
                }
            }
        }
    })
}
