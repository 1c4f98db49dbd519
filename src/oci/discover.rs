//! Evidence discovery: everything attached to a digest.
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

use std::collections::HashSet;
use std::sync::Mutex;

use bytes::Bytes;

use super::error::{RegistryError, RegistryErrorKind};
use super::evidence::{DiscoverOptions, Discovery, EvidenceContent, UnverifiedEvidence};
use super::manifest::{self, Descriptor, ImageIndex, ImageManifest, MANIFEST_ACCEPT};
use super::memo::Absence;
use super::record::RequestKind;
use super::resolve::index_platforms;
use super::session::{Session, next_link};
use crate::digest::Digest;
use crate::image::PlatformManifest;

use crate::verify::{DSSE_ENVELOPE, EvidenceSource, SIMPLE_SIGNING, SourceKind};

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
