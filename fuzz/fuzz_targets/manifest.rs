//! OCI manifest and index parsing (`provgate::oci::manifest::parse`) as
//! discovery uses it: image manifests (cosign tags, referrer artifacts),
//! indexes (multi-arch images, the referrers API and tag schema).
#![no_main]

use libfuzzer_sys::fuzz_target;
use provgate::oci::manifest::{
    self, Descriptor, ImageIndex, ImageManifest, is_index, is_sigstore_bundle,
};

fn check(d: &Descriptor) {
    let _ = d.platform.as_ref().map(|p| p.to_string());
    let _ = is_sigstore_bundle(&d.media_type);
    let _ = d.artifact_type.as_deref().map(is_sigstore_bundle);
    // Digests are validated while parsing.
    assert!(
        d.digest
            .to_string()
            .parse::<provgate::digest::Digest>()
            .is_ok()
    );
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = manifest::parse::<ImageManifest>(data) {
        let _ = is_sigstore_bundle(m.effective_artifact_type());
        let _ = m.media_type.as_deref().map(is_index);
        check(&m.config);
        m.layers.iter().for_each(check);
        if let Some(s) = &m.subject {
            check(s);
        }
    }
    if let Ok(i) = manifest::parse::<ImageIndex>(data) {
        let _ = i.media_type.as_deref().map(is_index);
        i.manifests.iter().for_each(check);
    }
    if let Ok(d) = manifest::parse::<Descriptor>(data) {
        check(&d);
    }
});
