//! Who asked and about what: the description of a request that every
//! layer may carry, from admission to the decision log.
//!
//! It sits at the bottom of the crate so that the decision log can
//! describe a request without importing the front end that read it.

use serde::Serialize;

/// What the request was about, for the decision log.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestMeta {
    /// The request uid.
    pub uid: String,
    /// CREATE, UPDATE, DELETE, CONNECT.
    pub operation: String,
    /// The object kind.
    pub kind: String,
    /// The subresource, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_resource: Option<String>,
    /// Namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
    /// The requesting user.
    pub user: String,
    /// A dry run: judged, but not a deploy.
    pub dry_run: bool,
}
