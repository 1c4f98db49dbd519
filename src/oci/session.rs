//! A session: requests to one registry host with one credential set,
//! under one image's byte budget, concurrency permits and deadline. Every
//! manifest and blob it reads is checked against its digest.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Semaphore;

use super::error::{RegistryError, RegistryErrorKind, TimeoutKind};
use super::manifest::Descriptor;
use super::memo::ReferrersMemo;
use super::record::{Budget, RequestKind, RequestLog};
use super::transport::{Ctx, Fetched, Transport};
use crate::digest::Digest;

impl Session<'_> {
    pub(super) fn ctx(&self) -> Ctx<'_> {
        Ctx {
            repo: self.repo,
            log: self.log,
            budget: self.budget,
        }
    }

    pub(super) fn host(&self) -> &str {
        self.transport.host()
    }

    pub(super) fn err(&self, context: impl Into<String>, kind: RegistryErrorKind) -> RegistryError {
        RegistryError::new(self.host(), context, kind)
    }

    /// One request, under the per-image concurrency limit.
    pub(super) async fn request(
        &self,
        kind: RequestKind,
        head: bool,
        path: &str,
        accept: Option<&str>,
        max: u64,
    ) -> Result<Fetched, RegistryError> {
        // The semaphore is never closed; if it were, run unlimited rather
        // than fail.
        let _permit = self.permits.acquire().await.ok();
        self.transport
            .request(&self.ctx(), kind, head, path, accept, max)
            .await
    }

    pub(super) async fn get(
        &self,
        kind: RequestKind,
        path: &str,
        accept: Option<&str>,
        max: u64,
    ) -> Result<Fetched, RegistryError> {
        self.request(kind, false, path, accept, max).await
    }

    /// A manifest by digest, checked against the digest.
    pub(super) async fn manifest_bytes(
        &self,
        digest: &Digest,
        accept: &str,
        kind: RequestKind,
    ) -> Result<Option<(Bytes, Option<String>)>, RegistryError> {
        let path = format!("{}/manifests/{digest}", self.repo);
        let context = format!("manifest {}@{digest}", self.repo);
        let got = self
            .get(
                kind,
                &path,
                Some(accept),
                self.transport.limits().max_manifest_bytes,
            )
            .await?;
        match got.status {
            200 => {}
            404 => return Ok(None),
            _ => return Err(self.transport.status_error(&context, &got)),
        }
        if !digest.matches(&got.body) {
            return Err(self.err(
                context,
                RegistryErrorKind::DigestMismatch {
                    expected: digest.to_string(),
                    actual: Digest::compute(digest.algorithm(), &got.body).to_string(),
                },
            ));
        }
        let ct = content_type(&got);
        Ok(Some((got.body, ct)))
    }

    /// A blob by descriptor, bounded by its declared size and the limit,
    /// checked against its digest.
    pub(super) async fn blob(&self, desc: &Descriptor) -> Result<Bytes, RegistryError> {
        let limits = self.transport.limits();
        let context = format!("blob {}@{}", self.repo, desc.digest);
        if desc.size > limits.max_blob_bytes {
            return Err(self.err(
                context,
                RegistryErrorKind::TooLarge {
                    what: "blob",
                    limit: limits.max_blob_bytes,
                    size: desc.size,
                },
            ));
        }
        let path = format!("{}/blobs/{}", self.repo, desc.digest);
        let got = self.get(RequestKind::Blob, &path, None, desc.size).await?;
        if got.status != 200 {
            return Err(self.transport.status_error(&context, &got));
        }
        if !desc.digest.matches(&got.body) {
            return Err(self.err(
                context,
                RegistryErrorKind::DigestMismatch {
                    expected: desc.digest.to_string(),
                    actual: Digest::compute(desc.digest.algorithm(), &got.body).to_string(),
                },
            ));
        }
        Ok(got.body)
    }
}

/// Requests and discovery, bound to one transport (host + credentials).
pub(crate) struct Session<'a> {
    pub transport: &'a Transport,
    pub repo: &'a str,
    pub log: &'a RequestLog,
    pub budget: &'a Budget,
    /// At most `limits.concurrency` requests at a time, for one image.
    pub permits: &'a Semaphore,
    /// Registries known to lack the referrers API.
    pub memo: &'a ReferrersMemo,
}

pub(super) fn content_type(f: &Fetched) -> Option<String> {
    f.header("content-type")
        .map(|c| c.split(';').next().unwrap_or(c).trim().to_owned())
        .filter(|c| !c.is_empty())
}

/// The `rel="next"` target of a `Link` header, as a path under `/v2/`, when
/// it stays on the same host.
pub(super) fn next_link(f: &Fetched, host: &str) -> Option<String> {
    let header = f
        .headers
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    for part in header.split(',') {
        let part = part.trim();
        if !part.contains("rel=\"next\"") && !part.contains("rel=next") {
            continue;
        }
        let target = part.strip_prefix('<')?.split('>').next()?;
        let path_and_query = if let Ok(u) = reqwest::Url::parse(target) {
            if super::transport::host_port(&u) != host {
                return None;
            }
            match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_owned(),
            }
        } else {
            target.to_owned()
        };
        return path_and_query.strip_prefix("/v2/").map(str::to_owned);
    }
    None
}

/// Runs `fut` under the per-image deadline.
pub(crate) async fn with_deadline<T>(
    millis: u64,
    registry: &str,
    context: &str,
    fut: impl std::future::Future<Output = Result<T, RegistryError>>,
) -> Result<T, RegistryError> {
    match tokio::time::timeout(Duration::from_millis(millis), fut).await {
        Ok(r) => r,
        Err(_) => Err(RegistryError::new(
            registry,
            context,
            RegistryErrorKind::Timeout(TimeoutKind::Deadline(Duration::from_millis(millis))),
        )),
    }
}
