//! The admission answer on the wire.

use kube::core::DynamicObject;
use kube::core::admission::AdmissionReview;

/// The review as the API server expects it on the wire, as JSON bytes.
/// kube-core serialises `response.patch` (a `Vec<u8>`) as an array of
/// numbers; Go's `[]byte` form, which the API server itself writes, is a
/// base64 string, so that is what provgate sends. Without a patch (every
/// validating answer) the review is written directly, with no
/// intermediate `serde_json::Value`.
pub fn to_wire_body(review: &AdmissionReview<DynamicObject>) -> Vec<u8> {
    use base64::Engine as _;
    let patch = review.response.as_ref().and_then(|r| r.patch.as_ref());
    let Some(patch) = patch else {
        return serde_json::to_vec(review).unwrap_or_else(|_| b"null".to_vec());
    };
    let mut v = serde_json::to_value(review).unwrap_or(serde_json::Value::Null);
    if let Some(slot) = v.pointer_mut("/response/patch") {
        *slot = serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(patch));
    }
    serde_json::to_vec(&v).unwrap_or_else(|_| b"null".to_vec())
}
