//! Per-registry options against the kit's real registry: mirrors (tried
//! first, origin as fallback) and plain HTTP only when allowed.

use std::collections::HashMap;
use std::sync::Arc;

use provgate::oci::{
    DiscoverOptions, ErrorClass, Limits, Registries, RegistryEntry, RegistryErrorKind, RequestKind,
};

use crate::common::kit::kit;
use crate::common::proxy::{Mode, Proxy};
use crate::common::registry::{CountingObserver, err, image_ref, kit_creds_for, ok, plain_options};
use crate::common::server::signed_image;

#[test]
fn a_mirror_is_tried_first_and_the_origin_when_the_mirror_fails() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let img = signed_image("mirror");
    let k = kit();
    let mirror = Proxy::start(&k.registry());
    // Images name the origin (the kit); the mirror is a proxy of it.
    let origin = k.registry();
    let mut entries = HashMap::new();
    entries.insert(
        origin.clone(),
        RegistryEntry {
            options: plain_options(),
            mirrors: vec![mirror.host()],
        },
    );
    entries.insert(
        mirror.host(),
        RegistryEntry {
            options: plain_options(),
            mirrors: Vec::new(),
        },
    );
    let observer = CountingObserver::new();
    let regs = Registries::new(
        entries,
        RegistryEntry::default(),
        Limits::default(),
        observer.clone(),
    );
    let creds = provgate::oci::CredentialSet::from_entries(
        "kit",
        [origin.clone(), mirror.host()].into_iter().map(|h| {
            let c = kit_creds_for("x", &h);
            (h.clone(), c.for_host(&h).unwrap().clone())
        }),
    );
    let reference = image_ref(&img.tagged);
    let (resolved, _) = ok(rt.block_on(regs.resolve(&reference, &creds)));
    assert_eq!(resolved.digest.to_string(), img.digest);
    let (found, _) = ok(rt.block_on(regs.discover(
        &reference,
        &resolved.digest,
        None,
        &creds,
        DiscoverOptions::default(),
    )));
    assert_eq!(found.registry, mirror.host(), "the mirror did not answer");
    assert_eq!(found.evidence.len(), 1);
    assert!(
        observer.seen().iter().all(|(r, _, _)| r == &mirror.host()),
        "{:?}",
        observer.seen()
    );
    // Mirror down: the origin answers.
    mirror.set(Mode::Down);
    let before = observer.seen().len();
    let (found, _) = ok(rt.block_on(regs.discover(
        &reference,
        &resolved.digest,
        None,
        &creds,
        DiscoverOptions::default(),
    )));
    assert_eq!(found.registry, origin);
    assert_eq!(found.evidence.len(), 1);
    assert!(
        observer.seen()[before..]
            .iter()
            .any(|(r, _, _)| r == &origin)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_used_only_when_the_registry_allows_it() {
    let img = tokio::task::spawn_blocking(|| signed_image("plain"))
        .await
        .unwrap();
    let k = kit();
    let observer = CountingObserver::new();
    // Default options: HTTPS only. The kit's plain listener cannot speak it.
    let regs = Registries::new(
        HashMap::new(),
        RegistryEntry::default(),
        Limits::default(),
        observer.clone(),
    );
    let creds = kit_creds_for("kit", &k.registry());
    let (e, requests) = err(regs.resolve(&image_ref(&img.tagged), &creds).await);
    assert!(matches!(e.kind, RegistryErrorKind::Connect(_)), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Transient);
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(observer.count_kind(RequestKind::Resolve), 1);
    // Allowed explicitly: it works.
    let mut entries = HashMap::new();
    entries.insert(
        k.registry(),
        RegistryEntry {
            options: plain_options(),
            mirrors: Vec::new(),
        },
    );
    let regs = Registries::new(
        entries,
        RegistryEntry::default(),
        Limits::default(),
        Arc::new(provgate::oci::NoObserver),
    );
    let (resolved, _) = ok(regs.resolve(&image_ref(&img.tagged), &creds).await);
    assert_eq!(resolved.digest.to_string(), img.digest);
}
