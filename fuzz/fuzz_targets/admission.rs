//! AdmissionReview parsing and image extraction: kube's
//! `AdmissionReview<DynamicObject>` deserialisation and conversion into a
//! request, as `provgate::admission::review` does, then
//! `provgate::admission::images::images_of` over the object and the old
//! object; and `images_of` over arbitrary JSON for every kind it knows.
//!
//! Invariant: every image found is at its JSON pointer (the pointer is what
//! the digest-pinning patch writes to).
#![no_main]

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionReview};
use libfuzzer_sys::fuzz_target;
use provgate::admission::images::images_of;
use serde_json::Value;

const KINDS: &[&str] = &[
    "Pod",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "ReplicationController",
    "PodTemplate",
    "Rollout",
    "ConfigMap",
];

fn extract(kind: &str, object: &Value) {
    if let Ok(Some(images)) = images_of(kind, object) {
        for i in images {
            assert_eq!(
                object.pointer(&i.pointer).and_then(Value::as_str),
                Some(i.image.as_str()),
                "{kind}: image {:?} is not at {}",
                i.image,
                i.pointer
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(review) = serde_json::from_slice::<AdmissionReview<DynamicObject>>(data) {
        let req: Result<AdmissionRequest<DynamicObject>, _> = review.try_into();
        if let Ok(req) = req {
            let kind = req.kind.kind.clone();
            for obj in [&req.object, &req.old_object].into_iter().flatten() {
                if let Ok(v) = serde_json::to_value(obj) {
                    extract(&kind, &v);
                }
            }
        }
    }
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        // A bare object, and the object of a review-shaped document.
        for kind in KINDS {
            extract(kind, &v);
        }
        if let Some(obj) = v.pointer("/request/object") {
            for kind in KINDS {
                extract(kind, obj);
            }
        }
    }
});
