//! The engine's seam to registries: the four things steps 2 and 3 ask.
//!
//! [`Registries`] answers over HTTP (with its transports, circuits and
//! referrers memo); the engine's unit tests answer from a script, so the
//! caching, coalescing, negative entries and failure policies can be tested
//! without a registry. The futures are boxed: they are awaited only on a
//! cache miss, which already boxes its state machine.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::digest::Digest;
use crate::image::ImageRef;
use crate::oci::{
    Circuits, CredentialSet, DiscoverOptions, Discovery, Limits, Registries, Resolved, Traced,
};

/// What the engine asks of registries.
pub trait Registry: Send + Sync {
    /// Resolves `image` to a digest (no request when it is pinned).
    fn resolve<'a>(
        &'a self,
        image: &'a ImageRef,
        creds: &'a CredentialSet,
    ) -> BoxFuture<'a, Traced<Resolved>>;

    /// Discovers the evidence attached to `digest` in `image`'s
    /// repository; `media_type` is the manifest's, when resolution told it.
    fn discover<'a>(
        &'a self,
        image: &'a ImageRef,
        digest: &'a Digest,
        media_type: Option<&'a str>,
        creds: &'a CredentialSet,
        opts: DiscoverOptions,
    ) -> BoxFuture<'a, Traced<Discovery>>;

    /// The limits answers are held to (the shared tier applies them too).
    fn limits(&self) -> &Limits;

    /// How long until `host` may be asked again: `None` when it is not
    /// backing off, zero when a probe may be sent.
    fn backoff_remaining(&self, host: &str) -> Option<Duration>;

    /// The per-host circuits, which a configuration reload carries over so
    /// that a host backing off keeps backing off; `None` when there are
    /// none.
    fn circuits(&self) -> Option<Arc<Circuits>> {
        None
    }
}

impl Registry for Registries {
    fn resolve<'a>(
        &'a self,
        image: &'a ImageRef,
        creds: &'a CredentialSet,
    ) -> BoxFuture<'a, Traced<Resolved>> {
        Box::pin(Registries::resolve(self, image, creds))
    }

    fn discover<'a>(
        &'a self,
        image: &'a ImageRef,
        digest: &'a Digest,
        media_type: Option<&'a str>,
        creds: &'a CredentialSet,
        opts: DiscoverOptions,
    ) -> BoxFuture<'a, Traced<Discovery>> {
        Box::pin(Registries::discover(
            self, image, digest, media_type, creds, opts,
        ))
    }

    fn limits(&self) -> &Limits {
        Registries::limits(self)
    }

    fn backoff_remaining(&self, host: &str) -> Option<Duration> {
        Registries::backoff_remaining(self, host)
    }

    fn circuits(&self) -> Option<Arc<Circuits>> {
        Some(Registries::circuits(self))
    }
}
