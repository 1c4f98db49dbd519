//! Resolution (tag → digest) and evidence discovery.
//!
//! For a digest, evidence is looked for in this order, then merged and
//! deduplicated by content digest:
//!
//! 1. the OCI 1.1 referrers API (`GET /v2/<name>/referrers/<digest>`),
//!    following `Link` pagination; on 404/400/405/501 (no referrers API, as
//!    in distribution 2.8)…
//! 2. …the referrers tag schema: an index tagged `sha256-<hex>`. The absence
//!    of the API is remembered per registry host and settings for a while
//!    ([`super::memo`]), and later discoveries go straight to the tag schema;
//! 3. cosign's `sha256-<hex>.sig` and `sha256-<hex>.att` tags (cosign v2
//!    writes them whatever the registry supports), unless the caller says
//!    no contract accepts legacy cosign evidence
//!    ([`DiscoverOptions::cosign_tags`]).
//!
//! No tag is ever *listed*: a registry with the referrers API costs one
//! request for (1) plus two for (3). Every lookup that does not depend on
//! another runs concurrently (at most `limits.concurrency` requests at a
//! time per image): (1)/(2) beside (3) beside the image manifest, and each
//! subject's manifests and blobs as soon as its list is known. provgate never asks the registry to
//! filter referrers (there is one `artifactType` per request and several
//! Sigstore bundle types); it filters the returned descriptors itself, so an
//! `OCI-Filters-Applied` header cannot make it trust a filter it did not ask
//! for.
//!
//! For an image index, the index digest is the one judged, and the platform
//! manifests are searched too; each piece of evidence records the digest it
//! was attached to. Every fetched manifest and blob is checked against its
//! digest before use, and nothing found here is trusted: it is all
//! [`UnverifiedEvidence`] until `crate::verify` says otherwise.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::Semaphore;

use super::client::{Budget, Ctx, Fetched, RequestKind, RequestLog, RequestRecord, Transport};
use super::error::{RegistryError, RegistryErrorKind, TimeoutKind};
use super::manifest::{self, Descriptor, ImageIndex, ImageManifest, MANIFEST_ACCEPT};
use super::memo::{Absence, ReferrersMemo};
use super::reference::ImageRef;
use crate::digest::Digest;
use crate::verify::{DSSE_ENVELOPE, EvidenceSource, SIMPLE_SIGNING, SourceKind};

/// The raw content of one piece of evidence.
#[derive(Debug, Clone)]
pub enum EvidenceContent {
    /// A Sigstore bundle (JSON).
    Bundle(Bytes),
    /// A cosign `.sig` simple-signing layer and its annotations.
    CosignSignature {
        /// The layer bytes.
        payload: Bytes,
        /// The layer's annotations.
        annotations: BTreeMap<String, String>,
    },
    /// A cosign `.att` DSSE layer and its annotations.
    CosignAttestation {
        /// The layer bytes.
        envelope: Bytes,
        /// The layer's annotations.
        annotations: BTreeMap<String, String>,
    },
}

/// Evidence as found in the registry: not yet verified.
#[derive(Debug, Clone)]
pub struct UnverifiedEvidence {
    /// The digest it was attached to (the image, or one of its platforms).
    pub subject: Digest,
    /// Where it was found.
    pub source: EvidenceSource,
    /// The bytes.
    pub content: EvidenceContent,
}

/// A platform manifest of an index.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformManifest {
    /// Its digest.
    pub digest: Digest,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// Whether evidence attached to it was searched (only the first
    /// `registries.limits.maxPlatforms` are); an unsearched platform is
    /// still judged, on the index's evidence alone.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unsearched: bool,
}

/// The result of discovery for one image.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// The digest judged.
    pub digest: Digest,
    /// The manifest media type, when known.
    pub media_type: Option<String>,
    /// Platform manifests, for an index.
    pub platforms: Vec<PlatformManifest>,
    /// Everything found, deduplicated.
    pub evidence: Vec<UnverifiedEvidence>,
    /// Things skipped, with the reason (for `--explain`).
    pub notes: Vec<String>,
    /// The registry host that answered (a mirror, or the origin).
    pub registry: String,
    /// The manifest (or index) of the digest judged, when it was fetched
    /// (checked against the digest). The shared tier keeps it so another
    /// replica can derive the platforms from it instead of trusting a list.
    pub manifest: Option<Bytes>,
}

/// A resolved reference.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The digest.
    pub digest: Digest,
    /// The manifest media type, when the registry said.
    pub media_type: Option<String>,
    /// Whether the reference was already pinned (no request made).
    pub pinned: bool,
}

/// Options of one discovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DiscoverOptions {
    /// Look up cosign's `sha256-<hex>.sig`/`.att` tags (two requests per
    /// digest searched). The engine turns this off when no bound contract
    /// accepts legacy cosign evidence; a discovery made without them finds
    /// less, so it must never be cached under the key of one made with them.
    pub cosign_tags: bool,
}

impl Default for DiscoverOptions {
    /// Everything is looked up (cosign tags included).
    fn default() -> Self {
        DiscoverOptions { cosign_tags: true }
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

/// What one discovery knows about the referrers API of its registry.
struct ReferrersApi {
    /// Absent, as remembered from an earlier discovery.
    remembered: Option<Absence>,
    /// The status of this discovery's own probe, when it said "absent".
    seen_absent: Mutex<Option<u16>>,
}

impl ReferrersApi {
    /// Whether the API is known to be absent (remembered, or already
    /// answered by a probe of this discovery): then the tag schema is
    /// looked up directly.
    fn known_absent(&self) -> bool {
        self.remembered.is_some()
            || self
                .seen_absent
                .lock()
                .map(|s| s.is_some())
                .unwrap_or(false)
    }

    fn saw_absent(&self, status: u16) {
        if let Ok(mut s) = self.seen_absent.lock() {
            s.get_or_insert(status);
        }
    }

    fn seen(&self) -> Option<u16> {
        self.seen_absent.lock().ok().and_then(|s| *s)
    }
}

impl Session<'_> {
    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            repo: self.repo,
            log: self.log,
            budget: self.budget,
        }
    }

    fn host(&self) -> &str {
        self.transport.host()
    }

    fn err(&self, context: impl Into<String>, kind: RegistryErrorKind) -> RegistryError {
        RegistryError::new(self.host(), context, kind)
    }

    /// One request, under the per-image concurrency limit.
    async fn request(
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

    async fn get(
        &self,
        kind: RequestKind,
        path: &str,
        accept: Option<&str>,
        max: u64,
    ) -> Result<Fetched, RegistryError> {
        self.request(kind, false, path, accept, max).await
    }

    /// Tag → digest: HEAD (`Docker-Content-Digest`), falling back to GET.
    pub async fn resolve(&self, image: &ImageRef) -> Result<Resolved, RegistryError> {
        if let Some(d) = image.digest() {
            return Ok(Resolved {
                digest: d.clone(),
                media_type: None,
                pinned: true,
            });
        }
        let tag = image.tag().unwrap_or("latest");
        let path = format!("{}/manifests/{tag}", self.repo);
        let context = format!("resolve {}:{tag}", self.repo);
        let max = self.transport.limits().max_manifest_bytes;
        let head = self
            .request(RequestKind::Resolve, true, &path, Some(MANIFEST_ACCEPT), 0)
            .await?;
        if head.status == 200 {
            if let Some(d) = head
                .header("docker-content-digest")
                .and_then(|d| d.trim().parse::<Digest>().ok())
            {
                return Ok(Resolved {
                    digest: d,
                    media_type: content_type(&head),
                    pinned: false,
                });
            }
        } else if head.status == 404 {
            return Err(self.err(context, RegistryErrorKind::NotFound));
        } else if !matches!(head.status, 400 | 405 | 501) {
            return Err(self.transport.status_error(&context, &head));
        }
        // No usable HEAD: GET and hash the bytes ourselves.
        let got = self
            .get(RequestKind::Resolve, &path, Some(MANIFEST_ACCEPT), max)
            .await?;
        if got.status != 200 {
            return Err(self.transport.status_error(&context, &got));
        }
        let digest = Digest::sha256_of(&got.body);
        if let Some(claimed) = got
            .header("docker-content-digest")
            .and_then(|d| d.trim().parse::<Digest>().ok())
            && claimed.algorithm() == digest.algorithm()
            && claimed != digest
        {
            return Err(self.err(
                context,
                RegistryErrorKind::DigestMismatch {
                    expected: claimed.to_string(),
                    actual: digest.to_string(),
                },
            ));
        }
        Ok(Resolved {
            digest,
            media_type: content_type(&got),
            pinned: false,
        })
    }

    /// A manifest by digest, checked against the digest.
    async fn manifest_bytes(
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
    async fn blob(&self, desc: &Descriptor) -> Result<Bytes, RegistryError> {
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

    /// Sigstore-bundle referrers of `digest`: the referrers API, or the tag
    /// schema when the registry has none (known beforehand, or answered
    /// now).
    async fn referrers(
        &self,
        digest: &Digest,
        api: &ReferrersApi,
    ) -> Result<Vec<(Descriptor, SourceKind)>, RegistryError> {
        if api.known_absent() {
            return self.tag_schema(digest).await;
        }
        let limits = self.transport.limits();
        let context = format!("referrers {}@{digest}", self.repo);
        let mut path = format!("{}/referrers/{digest}", self.repo);
        let mut out = Vec::new();
        let mut seen_pages = 0;
        loop {
            let got = self
                .get(
                    RequestKind::Referrers,
                    &path,
                    Some(manifest::OCI_INDEX),
                    limits.max_manifest_bytes,
                )
                .await?;
            match got.status {
                200 => {}
                404 | 400 | 405 | 501 if seen_pages == 0 => {
                    api.saw_absent(got.status);
                    return self.tag_schema(digest).await;
                }
                _ => return Err(self.transport.status_error(&context, &got)),
            }
            seen_pages += 1;
            let index: ImageIndex = manifest::parse(&got.body)
                .map_err(|e| self.err(&context, RegistryErrorKind::InvalidManifest(e)))?;
            for d in index.manifests {
                if d.artifact_type
                    .as_deref()
                    .is_some_and(manifest::is_sigstore_bundle)
                {
                    out.push((d, SourceKind::Referrers));
                }
            }
            if out.len() > limits.max_referrers {
                return Err(self.err(
                    context,
                    RegistryErrorKind::TooMany {
                        what: "Sigstore referrers",
                        limit: limits.max_referrers,
                    },
                ));
            }
            match next_link(&got, self.host()) {
                Some(next) => {
                    if seen_pages >= limits.max_pages {
                        return Err(self.err(
                            context,
                            RegistryErrorKind::TooMany {
                                what: "referrers pages",
                                limit: limits.max_pages,
                            },
                        ));
                    }
                    path = next;
                }
                None => return Ok(out),
            }
        }
    }

    async fn tag_schema(
        &self,
        digest: &Digest,
    ) -> Result<Vec<(Descriptor, SourceKind)>, RegistryError> {
        let limits = self.transport.limits();
        let tag = digest.tag_schema();
        let context = format!("referrers tag {}:{tag}", self.repo);
        let path = format!("{}/manifests/{tag}", self.repo);
        let got = self
            .get(
                RequestKind::Tag,
                &path,
                Some(manifest::OCI_INDEX),
                limits.max_manifest_bytes,
            )
            .await?;
        match got.status {
            200 => {}
            404 => return Ok(Vec::new()),
            _ => return Err(self.transport.status_error(&context, &got)),
        }
        let index: ImageIndex = manifest::parse(&got.body)
            .map_err(|e| self.err(&context, RegistryErrorKind::InvalidManifest(e)))?;
        let out: Vec<_> = index
            .manifests
            .into_iter()
            .filter(|d| {
                d.artifact_type
                    .as_deref()
                    .is_some_and(manifest::is_sigstore_bundle)
            })
            .map(|d| (d, SourceKind::TagSchema))
            .collect();
        if out.len() > limits.max_referrers {
            return Err(self.err(
                context,
                RegistryErrorKind::TooMany {
                    what: "Sigstore referrers",
                    limit: limits.max_referrers,
                },
            ));
        }
        Ok(out)
    }

    /// A cosign `.sig`/`.att` tag manifest, if present (none when
    /// `enabled` is false: no request).
    async fn cosign_tag(
        &self,
        digest: &Digest,
        suffix: &str,
        enabled: bool,
    ) -> Result<Option<(Digest, ImageManifest)>, RegistryError> {
        if !enabled {
            return Ok(None);
        }
        let limits = self.transport.limits();
        let tag = format!("{}.{suffix}", digest.tag_schema());
        let context = format!("cosign tag {}:{tag}", self.repo);
        let path = format!("{}/manifests/{tag}", self.repo);
        let accept = format!("{}, {}", manifest::OCI_MANIFEST, manifest::DOCKER_MANIFEST);
        let got = self
            .get(
                RequestKind::Tag,
                &path,
                Some(&accept),
                limits.max_manifest_bytes,
            )
            .await?;
        match got.status {
            200 => {}
            404 => return Ok(None),
            _ => return Err(self.transport.status_error(&context, &got)),
        }
        let m: ImageManifest = manifest::parse(&got.body)
            .map_err(|e| self.err(&context, RegistryErrorKind::InvalidManifest(e)))?;
        if m.layers.len() > limits.max_layers {
            return Err(self.err(
                context,
                RegistryErrorKind::TooMany {
                    what: "cosign layers",
                    limit: limits.max_layers,
                },
            ));
        }
        Ok(Some((Digest::sha256_of(&got.body), m)))
    }

    /// Everything attached to one digest: its candidates (referrers or tag
    /// schema, and cosign tags, looked up concurrently), then their
    /// manifests and blobs (concurrently, as each subject's list arrives:
    /// one subject's fetches do not wait for another's lookups).
    async fn subject_evidence(
        &self,
        digest: &Digest,
        opts: DiscoverOptions,
        api: &ReferrersApi,
    ) -> Result<FetchedJob, RegistryError> {
        let (referrers, sig, att) = futures_util::try_join!(
            self.referrers(digest, api),
            self.cosign_tag(digest, "sig", opts.cosign_tags),
            self.cosign_tag(digest, "att", opts.cosign_tags),
        )?;
        let mut notes = Vec::new();
        let mut jobs: Vec<Job> = Vec::new();
        let mut seen_manifests = HashSet::new();
        for (desc, kind) in referrers {
            if seen_manifests.insert(desc.digest.clone()) {
                jobs.push(Job::Referrer {
                    subject: digest.clone(),
                    desc,
                    kind,
                });
            }
        }
        for (manifest, suffix) in [(sig, SourceKind::CosignSig), (att, SourceKind::CosignAtt)] {
            let Some((mdigest, m)) = manifest else {
                continue;
            };
            let want = if suffix == SourceKind::CosignSig {
                SIMPLE_SIGNING
            } else {
                DSSE_ENVELOPE
            };
            for layer in m.layers {
                if layer.media_type != want {
                    notes.push(format!(
                        "skipped cosign layer {} of media type {}",
                        layer.digest, layer.media_type
                    ));
                    continue;
                }
                jobs.push(Job::Cosign {
                    subject: digest.clone(),
                    manifest: mdigest.clone(),
                    layer,
                    kind: suffix,
                });
            }
        }
        // The semaphore bounds how many of these run at once.
        let results =
            futures_util::future::try_join_all(jobs.into_iter().map(|job| self.fetch_job(job)))
                .await?;
        let mut evidence = Vec::new();
        for (ev, n) in results {
            evidence.extend(ev);
            notes.extend(n);
        }
        Ok((evidence, notes))
    }

    /// Discovers the evidence of `digest` (and of its platforms).
    pub async fn discover(
        &self,
        digest: &Digest,
        known_media_type: Option<&str>,
        opts: DiscoverOptions,
    ) -> Result<Discovery, RegistryError> {
        let api = ReferrersApi {
            remembered: self.memo.absent(self.host(), self.transport.options()),
            seen_absent: Mutex::new(None),
        };
        // The manifest itself: proves the digest exists and tells whether it
        // is an index (not fetched when a HEAD already said it is not). Runs
        // alongside the search of the root digest; an index's platforms are
        // searched as soon as it arrives.
        let manifest_and_platforms = async {
            let looked_up = match known_media_type {
                Some(mt) if !manifest::is_index(mt) => Some((None, Some(mt.to_owned()))),
                _ => self
                    .manifest_bytes(digest, MANIFEST_ACCEPT, RequestKind::Manifest)
                    .await?
                    .map(|(b, ct)| (Some(b), ct)),
            };
            let Some((body, media_type)) = looked_up else {
                return Err(self.err(
                    format!("manifest {}@{digest}", self.repo),
                    RegistryErrorKind::NotFound,
                ));
            };
            let mut notes = Vec::new();
            let platforms = match &body {
                Some(body) => self.platforms(digest, body, media_type.as_deref(), &mut notes)?,
                None => Vec::new(),
            };
            let manifest = body;
            let found = futures_util::future::try_join_all(
                platforms
                    .iter()
                    .filter(|p| !p.unsearched)
                    .map(|p| self.subject_evidence(&p.digest, opts, &api)),
            )
            .await?;
            Ok((media_type, platforms, found, notes, manifest))
        };
        let ((media_type, platforms, on_platforms, platform_notes, manifest), on_root) = futures_util::try_join!(
            manifest_and_platforms,
            self.subject_evidence(digest, opts, &api)
        )?;
        let mut notes = platform_notes;
        let mut evidence = Vec::new();
        let mut seen_layers = HashSet::new();
        for (ev, n) in std::iter::once(on_root).chain(on_platforms) {
            notes.extend(n);
            for e in ev {
                let key = (e.subject.clone(), e.source.layer.clone());
                if seen_layers.insert(key) {
                    evidence.push(e);
                }
            }
        }
        // The discovery succeeded, so the digest (and its repository) exist:
        // a "no referrers API" answer is about the registry, and worth
        // remembering.
        let tag = digest.tag_schema();
        if let Some(a) = api.remembered {
            notes.push(format!(
                "referrers API absent on {} (remembered since {}, when it answered {}); used the {tag} tag schema",
                self.host(),
                a.since.strftime("%Y-%m-%dT%H:%M:%SZ"),
                a.status,
            ));
        } else if let Some(status) = api.seen() {
            self.memo
                .remember(self.host(), self.transport.options(), status);
            notes.push(format!(
                "referrers API absent on {} (it answered {status}); used the {tag} tag schema; remembered for {} s",
                self.host(),
                self.memo.ttl().as_secs(),
            ));
        }
        if !opts.cosign_tags {
            notes.push(format!(
                "cosign tags {tag}.sig and {tag}.att not looked up: no bound contract accepts legacy cosign evidence"
            ));
        }
        let mut seen_notes = HashSet::new();
        notes.retain(|n| seen_notes.insert(n.clone()));
        Ok(Discovery {
            digest: digest.clone(),
            media_type,
            platforms,
            evidence,
            notes,
            registry: self.host().to_owned(),
            manifest,
        })
    }

    /// The platform manifests of an index to search (none for an image).
    fn platforms(
        &self,
        digest: &Digest,
        body: &Bytes,
        media_type: Option<&str>,
        notes: &mut Vec<String>,
    ) -> Result<Vec<PlatformManifest>, RegistryError> {
        index_platforms(
            body,
            media_type,
            self.transport.limits().max_platforms,
            notes,
        )
        .map_err(|e| {
            self.err(
                format!("index {}@{digest}", self.repo),
                RegistryErrorKind::InvalidManifest(e),
            )
        })
    }

    async fn fetch_job(&self, job: Job) -> Result<FetchedJob, RegistryError> {
        let mut notes = Vec::new();
        match job {
            Job::Referrer {
                subject,
                desc,
                kind,
            } => {
                let accept = format!("{}, {}", manifest::OCI_MANIFEST, desc.media_type);
                let Some((body, _)) = self
                    .manifest_bytes(&desc.digest, &accept, RequestKind::Manifest)
                    .await?
                else {
                    return Err(self.err(
                        format!("referrer manifest {}@{}", self.repo, desc.digest),
                        RegistryErrorKind::NotFound,
                    ));
                };
                let m: ImageManifest = manifest::parse(&body).map_err(|e| {
                    self.err(
                        format!("referrer manifest {}@{}", self.repo, desc.digest),
                        RegistryErrorKind::InvalidManifest(e),
                    )
                })?;
                if let Some(s) = &m.subject
                    && s.digest != subject
                {
                    notes.push(format!(
                        "skipped referrer {}: its subject is {}, not {subject}",
                        desc.digest, s.digest
                    ));
                    return Ok((Vec::new(), notes));
                }
                let layers: Vec<&Descriptor> = m
                    .layers
                    .iter()
                    .filter(|l| manifest::is_sigstore_bundle(&l.media_type))
                    .collect();
                let max_layers = self.transport.limits().max_layers;
                if layers.len() > max_layers {
                    return Err(self.err(
                        format!("referrer manifest {}@{}", self.repo, desc.digest),
                        RegistryErrorKind::TooMany {
                            what: "bundle layers",
                            limit: max_layers,
                        },
                    ));
                }
                if layers.is_empty() {
                    notes.push(format!(
                        "skipped referrer {}: no Sigstore bundle layer",
                        desc.digest
                    ));
                }
                let blobs =
                    futures_util::future::try_join_all(layers.iter().map(|l| self.blob(l))).await?;
                let out = layers
                    .into_iter()
                    .zip(blobs)
                    .map(|(layer, bytes)| UnverifiedEvidence {
                        subject: subject.clone(),
                        source: EvidenceSource {
                            kind,
                            manifest: Some(desc.digest.clone()),
                            layer: Some(layer.digest.clone()),
                        },
                        content: EvidenceContent::Bundle(bytes),
                    })
                    .collect();
                Ok((out, notes))
            }
            Job::Cosign {
                subject,
                manifest,
                layer,
                kind,
            } => {
                let bytes = self.blob(&layer).await?;
                let content = if kind == SourceKind::CosignSig {
                    EvidenceContent::CosignSignature {
                        payload: bytes,
                        annotations: layer.annotations.clone(),
                    }
                } else {
                    EvidenceContent::CosignAttestation {
                        envelope: bytes,
                        annotations: layer.annotations.clone(),
                    }
                };
                Ok((
                    vec![UnverifiedEvidence {
                        subject,
                        source: EvidenceSource {
                            kind,
                            manifest: Some(manifest),
                            layer: Some(layer.digest.clone()),
                        },
                        content,
                    }],
                    notes,
                ))
            }
        }
    }
}

/// The evidence one job fetched, and notes about what it skipped.
type FetchedJob = (Vec<UnverifiedEvidence>, Vec<String>);

enum Job {
    Referrer {
        subject: Digest,
        desc: Descriptor,
        kind: SourceKind,
    },
    Cosign {
        subject: Digest,
        manifest: Digest,
        layer: Descriptor,
        kind: SourceKind,
    },
}

/// The platform manifests of an index to search for evidence (none for an
/// image manifest): at most `max_platforms`, BuildKit's attestation
/// manifests (`unknown/unknown`) left out. `media_type` is the registry's
/// Content-Type, else the body's own `mediaType`. Used on discovery and on
/// every read of the shared tier, which derives the list from the manifest
/// bytes instead of trusting a stored one.
pub(crate) fn index_platforms(
    body: &[u8],
    media_type: Option<&str>,
    max_platforms: usize,
    notes: &mut Vec<String>,
) -> Result<Vec<PlatformManifest>, String> {
    let media = media_type.map(str::to_owned).or_else(|| {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v.get("mediaType")
                    .and_then(|m| m.as_str())
                    .map(str::to_owned)
            })
    });
    let mut platforms = Vec::new();
    if !media.as_deref().is_some_and(manifest::is_index) {
        return Ok(platforms);
    }
    let index: ImageIndex = manifest::parse(body)?;
    for entry in index.manifests {
        let Some(p) = &entry.platform else { continue };
        // BuildKit's attestation manifests are unsigned in-toto
        // documents, not Sigstore evidence.
        if p.os == "unknown" {
            continue;
        }
        // Every platform is listed (and judged), however many there are
        // within the manifest's byte limit, and only the first ones are
        // searched for their own evidence; the number judged is bounded too.
        let judged_limit = max_platforms.saturating_mul(4);
        if platforms.len() >= judged_limit {
            return Err(format!(
                "the index lists more than {judged_limit} platform manifests (4 x registries.limits.maxPlatforms)"
            ));
        }
        let unsearched = platforms.len() >= max_platforms;
        if unsearched && platforms.len() == max_platforms {
            notes.push(format!(
                "only the first {max_platforms} platform manifests were searched for evidence (registries.limits.maxPlatforms); the others are judged on the index's evidence alone"
            ));
        }
        platforms.push(PlatformManifest {
            digest: entry.digest.clone(),
            platform: p.to_string(),
            unsearched,
        });
    }
    Ok(platforms)
}

fn content_type(f: &Fetched) -> Option<String> {
    f.header("content-type")
        .map(|c| c.split(';').next().unwrap_or(c).trim().to_owned())
        .filter(|c| !c.is_empty())
}

/// The `rel="next"` target of a `Link` header, as a path under `/v2/`, when
/// it stays on the same host.
fn next_link(f: &Fetched, host: &str) -> Option<String> {
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
            if super::client::host_port(&u) != host {
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

/// The result of [`crate::oci::Registries::discover`] with its request log.
#[derive(Debug, Clone)]
pub struct Traced<T> {
    /// The result.
    pub result: Result<T, RegistryError>,
    /// The requests made.
    pub requests: Vec<RequestRecord>,
}
