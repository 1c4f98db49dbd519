use super::*;
use serde_json::json;

#[test]
fn controlled_objects_are_represented_by_their_controller() {
    let list = json!({"kind": "List", "items": [
        {"kind": "Deployment", "metadata": {"name": "api", "namespace": "pay", "labels": {"team": "pay"}},
         "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "api", "image": "ghcr.io/acme/api:1"}]}}}},
        {"kind": "Pod", "metadata": {"name": "api-1", "namespace": "pay", "ownerReferences": [{"kind": "ReplicaSet", "name": "api-x", "controller": true, "apiVersion": "apps/v1", "uid": "u"}]},
         "spec": {"containers": [{"name": "api", "image": "ghcr.io/acme/api:1"}]}},
        {"kind": "Pod", "metadata": {"name": "debug", "namespace": "pay"}, "spec": {"containers": [{"name": "sh", "image": "busybox"}]}},
        {"kind": "Service", "metadata": {"name": "svc", "namespace": "pay"}}
    ]});
    let w = workloads_from_list(list.to_string().as_bytes()).unwrap();
    let keys: Vec<String> = w.iter().map(|w| w.key()).collect();
    assert_eq!(keys, vec!["pay/Deployment/api", "pay/Pod/debug"]);
    assert_eq!(w[0].labels.get("team").map(String::as_str), Some("pay"));
}

#[test]
fn input_that_is_not_a_list_or_object_is_an_error() {
    assert!(workloads_from_list(b"[1,2]").is_err());
    assert!(workloads_from_list(b"{\"items\": 3}").is_err());
    assert!(workloads_from_list(b"not json").is_err());
}

#[test]
fn unreadable_objects_are_kept_as_unreadable_workloads() {
    let list = json!({"kind": "List", "items": [
        {"kind": "Pod", "metadata": {"name": "p", "namespace": "a"}, "spec": {"containers": 3}},
        {"kind": "Pod", "metadata": {"namespace": "a"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        {"kind": "Deployment", "metadata": {"name": "d"}, "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}},
        {"kind": "Pod", "metadata": {"name": "ok", "namespace": "a"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    ]});
    let w = workloads_from_list(list.to_string().as_bytes()).unwrap();
    let by_key: BTreeMap<String, &Workload> = w.iter().map(|w| (w.key(), w)).collect();
    assert_eq!(w.len(), 4, "{by_key:?}");
    let why = |k: &str| by_key[k].unreadable.clone().unwrap_or_default();
    assert!(
        why("a/Pod/p").contains("cannot read the Pod"),
        "{}",
        why("a/Pod/p")
    );
    assert!(
        why("a/Pod/").contains("no metadata.name"),
        "{}",
        why("a/Pod/")
    );
    assert!(why("a/Pod/").contains("items[1]"), "{}", why("a/Pod/"));
    assert!(why("/Deployment/d").contains("no metadata.namespace"));
    assert_eq!(by_key["a/Pod/ok"].unreadable, None);
    assert_eq!(by_key["a/Pod/ok"].api_version, "v1");
}

#[test]
fn unreadable_workloads_count_as_neither_compliant_nor_allowed() {
    let w = Workload {
        namespace: String::new(),
        kind: "Pod".into(),
        name: "p".into(),
        api_version: "v1".into(),
        uid: None,
        labels: BTreeMap::new(),
        images: Vec::new(),
        unreadable: Some("unreadable Pod: it has no metadata.namespace".into()),
        namespace_labels: None,
    };
    let r = assemble(
        jiff::Timestamp::UNIX_EPOCH,
        "team".into(),
        vec![unjudged(&w, "team", false)],
    );
    assert_eq!(
        r.summary.total,
        Counts {
            workloads: 1,
            compliant: 0,
            would_deny: 1,
            unreadable: 1
        }
    );
    assert!(table(&r).contains("Pod/p: UNREADABLE"), "{}", table(&r));
}

#[test]
fn namespace_objects_in_the_input_give_their_labels() {
    let list = json!({"kind": "List", "items": [
        {"kind": "Namespace", "metadata": {"name": "a", "labels": {"provgate.dev/ignore": "true"}}},
        {"kind": "Pod", "metadata": {"name": "p", "namespace": "a"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        {"kind": "Pod", "metadata": {"name": "q", "namespace": "b"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    ]});
    let w = workloads_from_list(list.to_string().as_bytes()).unwrap();
    assert_eq!(w.len(), 2);
    assert_eq!(
        w[0].namespace_labels
            .as_ref()
            .and_then(|l| l.get("provgate.dev/ignore"))
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(w[1].namespace_labels, None);
}
