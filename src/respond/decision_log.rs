//! The decision log: one JSON line per decision.
//!
//! Each line carries the request (uid, operation, kind, namespace, name,
//! user, dry run), the caller for gate calls, and per image: the reference,
//! container, digest, outcome, every contract with its version, binding,
//! mode and verdict, the messages, the exemption used, and the digests of
//! the evidence that reached the Rego. Lines go to stdout (the default;
//! logs go to stderr) or are appended to a file. The format is documented in
//! `docs/decision-log.md`; `apiVersion` versions it.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

use crate::digest::Digest;
use crate::engine::decision::{ImageDecision, Outcome, Verdict};
use crate::request::RequestMeta;

/// The record's `apiVersion`.
pub const DECISION_LOG_V1: &str = "provgate.dev/decision-log/v1";

/// One contract's verdict in a record.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractRecord {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// The binding that applied it.
    pub binding: String,
    /// Mode in force.
    pub mode: &'static str,
    /// Configured mode (differs before `enforce_after`).
    pub configured_mode: &'static str,
    /// Verdict.
    pub verdict: Verdict,
    /// Deny and warn messages, with requirement and fix.
    pub messages: Vec<String>,
    /// The exemption used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exemption: Option<String>,
    /// Evidence that reached the Rego.
    pub evidence: Vec<Digest>,
    /// For an image index: each judged platform's verdict.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<crate::engine::decision::PlatformVerdict>,
}

/// One image in a record.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRecord {
    /// As written.
    pub image: String,
    /// Container or volume name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Digest judged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// Outcome.
    pub outcome: Outcome,
    /// No binding covered it.
    pub unmatched: bool,
    /// Contracts.
    pub contracts: Vec<ContractRecord>,
    /// Evidence that failed verification (count).
    pub rejected: usize,
    /// The error that decided it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Degraded service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded: Option<String>,
}

/// One decision.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRecord {
    /// [`DECISION_LOG_V1`].
    pub api_version: &'static str,
    /// RFC 3339.
    pub time: String,
    /// `validate`, `mutate`, `gate`, `report`.
    pub endpoint: String,
    /// The admission request, for admission decisions.
    #[serde(flatten)]
    pub request: Option<RequestMeta>,
    /// The gate caller's identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// Whether the request was allowed.
    pub allowed: bool,
    /// Why nothing was judged, when so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// The images.
    pub images: Vec<ImageRecord>,
}

impl DecisionRecord {
    /// Builds a record from decisions.
    pub fn new(
        now: jiff::Timestamp,
        endpoint: &str,
        request: Option<RequestMeta>,
        caller: Option<String>,
        allowed: bool,
        decisions: &[ImageDecision],
    ) -> Self {
        DecisionRecord {
            api_version: DECISION_LOG_V1,
            time: now.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            endpoint: endpoint.to_owned(),
            request,
            caller,
            allowed,
            skipped: None,
            images: decisions.iter().map(image_record).collect(),
        }
    }
}

fn image_record(d: &ImageDecision) -> ImageRecord {
    ImageRecord {
        image: d.image.clone(),
        container: d.context.container.clone(),
        digest: d.digest.clone(),
        outcome: d.outcome,
        unmatched: d.unmatched,
        contracts: d
            .contracts
            .iter()
            .map(|c| ContractRecord {
                name: c.name.clone(),
                version: c.version.clone(),
                binding: c.binding.clone(),
                mode: c.mode.mode.as_str(),
                configured_mode: c.mode.configured.as_str(),
                verdict: c.verdict,
                messages: c
                    .deny
                    .iter()
                    .chain(&c.warn)
                    .map(crate::respond::wording::violation_text)
                    .chain(c.error.clone())
                    .collect(),
                exemption: c
                    .exemption
                    .as_ref()
                    .map(|e| format!("{} (until {})", e.reason, e.expires)),
                evidence: c.evidence_used.clone(),
                platforms: c.platforms.clone(),
            })
            .collect(),
        rejected: d.rejected.len(),
        error: d.error.as_ref().map(|e| e.message.clone()),
        degraded: d.degraded.clone(),
    }
}

/// Where decision records go.
pub struct DecisionLog {
    sink: Option<Mutex<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for DecisionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionLog")
            .field("enabled", &self.sink.is_some())
            .finish()
    }
}

impl DecisionLog {
    /// A disabled log.
    pub fn disabled() -> Self {
        DecisionLog { sink: None }
    }

    /// Writes to stdout.
    pub fn stdout() -> Self {
        DecisionLog {
            sink: Some(Mutex::new(Box::new(std::io::stdout()))),
        }
    }

    /// Appends to a file (created if needed).
    pub fn file(path: &Path) -> std::io::Result<Self> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(DecisionLog {
            sink: Some(Mutex::new(Box::new(f))),
        })
    }

    /// From the configuration.
    /// A relative path is relative to `base` (the configuration's directory).
    pub fn from_spec(spec: &crate::config::DecisionLogSpec, base: &Path) -> std::io::Result<Self> {
        if !spec.enabled {
            return Ok(Self::disabled());
        }
        match &spec.path {
            Some(p) if p.as_os_str() != "-" => Self::file(&if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            }),
            _ => Ok(Self::stdout()),
        }
    }

    /// Whether records are written at all (callers skip building one when
    /// not).
    pub fn enabled(&self) -> bool {
        self.sink.is_some()
    }

    /// Writes one record as a line. Errors are logged, never fatal.
    pub fn write(&self, record: &DecisionRecord) {
        let Some(sink) = &self.sink else { return };
        let mut line = match serde_json::to_vec(record) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a decision record");
                return;
            }
        };
        line.push(b'\n');
        if let Ok(mut w) = sink.lock()
            && let Err(e) = w.write_all(&line).and_then(|_| w.flush())
        {
            tracing::error!(error = %e, "cannot write the decision log");
        }
    }
}
