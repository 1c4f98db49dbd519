//! The admission webhook over real TLS, with AdmissionReviews built by the
//! kit and images signed by the kit's real signers in the kit's registry.

use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::common::server::{
    Server, Setup, allowed, message, response, review_of, signed_image, temp_file, unsigned_image,
    warnings,
};

/// One server for the tests that need nothing special.
fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| Server::start(Setup::default()))
}

fn signed() -> &'static crate::common::server::KitImage {
    static I: OnceLock<crate::common::server::KitImage> = OnceLock::new();
    I.get_or_init(|| signed_image("adm-signed"))
}

fn unsigned() -> &'static crate::common::server::KitImage {
    static I: OnceLock<crate::common::server::KitImage> = OnceLock::new();
    I.get_or_init(|| unsigned_image("adm-unsigned"))
}

#[test]
fn response_echoes_uid_and_api_version() {
    let s = server();
    let body = review_of(&[
        "--deployment",
        "web",
        "--image",
        &signed().tagged,
        "--namespace",
        "prod",
        "--uid",
        "abc-123",
    ]);
    let v = s.review("/validate", &body);
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    assert_eq!(response(&v)["uid"], "abc-123");
    assert!(allowed(&v), "{v}");
}

#[test]
fn every_workload_kind_denies_an_unsigned_image_and_allows_a_signed_one() {
    let s = server();
    for kind in [
        "pod",
        "deployment",
        "replicaset",
        "statefulset",
        "daemonset",
        "job",
        "cronjob",
    ] {
        let bad = review_of(&[
            "--workload",
            &format!("{kind}/w"),
            "--image",
            &unsigned().tagged,
            "--namespace",
            "prod",
        ]);
        let v = s.review("/validate", &bad);
        assert!(
            !allowed(&v),
            "{kind} with an unsigned image was allowed: {v}"
        );
        assert_eq!(response(&v)["status"]["code"], 403);
        let m = message(&v);
        assert!(
            m.contains("slsa-provenance") && m.contains("Fix:"),
            "{kind}: {m}"
        );
        let good = review_of(&[
            "--workload",
            &format!("{kind}/w"),
            "--image",
            &signed().tagged,
            "--namespace",
            "prod",
        ]);
        let v = s.review("/validate", &good);
        assert!(allowed(&v), "{kind} with a signed image was denied: {v}");
    }
}

fn object_review(s_dir: &std::path::Path, object: &Value, extra: &[&str]) -> String {
    let f = temp_file(
        s_dir,
        &format!("obj-{}.json", rand_suffix()),
        &object.to_string(),
    );
    let mut args = vec!["--object", f.to_str().unwrap()];
    args.extend_from_slice(extra);
    review_of(&args)
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[test]
fn replication_controller_and_unknown_kinds_with_templates_are_judged() {
    let s = server();
    let template = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "app", "image": unsigned().tagged}]}});
    let rc = json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "rc", "namespace": "prod"},
        "spec": {"replicas": 0, "selector": {"app": "x"}, "template": template}});
    let v = s.review(
        "/validate",
        &object_review(s.dir.path(), &rc, &["--namespace", "prod"]),
    );
    assert!(!allowed(&v), "RC with unsigned image allowed: {v}");
    let rollout = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "r", "namespace": "prod"},
        "spec": {"template": template}});
    let v = s.review(
        "/validate",
        &object_review(s.dir.path(), &rollout, &["--namespace", "prod"]),
    );
    assert!(
        !allowed(&v),
        "a custom kind with a pod template was allowed: {v}"
    );
    // A kind without a pod spec is no longer allowed unread (issue 11).
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "prod"}, "data": {"image": unsigned().tagged}});
    let v = s.review(
        "/validate",
        &object_review(s.dir.path(), &cm, &["--namespace", "prod"]),
    );
    assert!(!allowed(&v), "a kind provgate cannot read was allowed: {v}");
    let m = message(&v);
    assert!(
        m.contains("ConfigMap prod/c") && m.contains("admission.skipKinds"),
        "{m}"
    );
}

/// A PodTemplate keeps its template at `.template`, not `.spec.template`:
/// it used to be "skipped: no pod template".
fn pod_template(image: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "tpl", "namespace": "prod"},
        "template": {"metadata": {"labels": {"app": "x"}},
            "spec": {"containers": [{"name": "app", "image": image}],
                     "initContainers": [{"name": "init", "image": signed().tagged}]}}})
}

#[test]
fn a_pod_template_with_an_unsigned_image_is_denied() {
    let s = server();
    let v = s.review(
        "/validate",
        &object_review(
            s.dir.path(),
            &pod_template(&unsigned().tagged),
            &["--namespace", "prod"],
        ),
    );
    assert!(
        !allowed(&v),
        "a PodTemplate with an unsigned image was allowed: {v}"
    );
    let m = message(&v);
    assert!(
        m.starts_with("provgate denied PodTemplate prod/tpl:") && m.contains("container \"app\""),
        "{m}"
    );
    assert!(
        response(&v)["auditAnnotations"]
            .get("provgate.dev/skipped")
            .is_none(),
        "{v}"
    );
    // Its init containers are judged too.
    let mut bad_init = pod_template(&signed().tagged);
    bad_init["template"]["spec"]["initContainers"][0]["image"] = json!(unsigned().tagged);
    let v = s.review(
        "/validate",
        &object_review(s.dir.path(), &bad_init, &["--namespace", "prod"]),
    );
    assert!(
        !allowed(&v),
        "an unsigned init container of a PodTemplate was allowed: {v}"
    );
    let v = s.review(
        "/validate",
        &object_review(
            s.dir.path(),
            &pod_template(&signed().tagged),
            &["--namespace", "prod"],
        ),
    );
    assert!(allowed(&v), "{v}");
}

#[test]
fn a_pod_template_is_pinned_at_its_own_json_pointers() {
    let s = Server::start(Setup {
        bindings: "  - name: prod\n    contracts: [needs-provenance]\n    mode: enforce\n    pinDigests: true\n".into(),
        ..Setup::default()
    });
    let t = pod_template(&signed().tagged);
    let v = s.review(
        "/mutate",
        &object_review(s.dir.path(), &t, &["--namespace", "prod"]),
    );
    assert!(allowed(&v), "{v}");
    let patched = apply_patch(&t, response(&v)["patch"].as_str().expect("a patch"));
    let pinned = format!("{}@{}", signed().tagged, signed().digest);
    assert_eq!(
        patched["template"]["spec"]["containers"][0]["image"],
        json!(pinned)
    );
    assert_eq!(
        patched["template"]["spec"]["initContainers"][0]["image"],
        json!(pinned)
    );
    assert!(
        patched.get("spec").is_none(),
        "the patch wrote outside the template: {patched}"
    );
}

/// A custom kind whose pod spec is somewhere provgate does not look.
fn widget(image: &str) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "prod"},
        "spec": {"pod": {"containers": [{"name": "app", "image": image}]}}})
}

#[test]
fn an_unknown_kind_with_a_pod_spec_like_body_is_denied_unless_skipped() {
    let s = server();
    let body = |s: &Server| {
        object_review(
            s.dir.path(),
            &widget(&unsigned().tagged),
            &["--namespace", "prod", "--no-defaults"],
        )
    };
    let v = s.review("/validate", &body(s));
    assert!(!allowed(&v), "an unreadable kind was allowed: {v}");
    assert_eq!(response(&v)["status"]["code"], 403);
    let m = message(&v);
    assert!(
        m.contains("Widget prod/w")
            && m.contains("example.com/Widget")
            && m.contains("admission.skipKinds"),
        "the denial does not name the kind and the fix: {m}"
    );
    // Skipping another kind, or the same kind in another group, does not help.
    let other = Server::start(Setup {
        extra: "admission: {skipKinds: [Gadget, other.io/Widget]}\n".into(),
        ..Setup::default()
    });
    assert!(!allowed(&other.review("/validate", &body(&other))));
    // Listed explicitly: allowed without judging, and the audit log says so.
    let skipping = Server::start(Setup {
        extra: "admission: {skipKinds: [example.com/Widget, Rollout]}\n".into(),
        ..Setup::default()
    });
    let v = skipping.review("/validate", &body(&skipping));
    assert!(allowed(&v), "{v}");
    let note = response(&v)["auditAnnotations"]["provgate.dev/skipped"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        note.contains("example.com/Widget") && note.contains("skipKinds"),
        "{v}"
    );
    // A listed kind whose pod template provgate can read is still judged:
    // skipKinds only covers kinds that cannot be read.
    let rollout = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "r", "namespace": "prod"},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": unsigned().tagged}]}}}});
    let v = skipping.review(
        "/validate",
        &object_review(skipping.dir.path(), &rollout, &["--namespace", "prod"]),
    );
    assert!(
        !allowed(&v),
        "skipKinds let a readable kind through unjudged: {v}"
    );
}

/// A registry address nothing listens on.
fn closed_registry() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr.to_string()
}

/// A server whose only binding has `mode`, judging images of a registry that
/// is down, and the answer for a Pod (container `web`) of one of them.
/// `audit` binds the built-in contracts, as the embedded default
/// configuration does; `warn` binds the test contract.
fn review_with_registry_down(mode: &str) -> (Value, String) {
    let registry = closed_registry();
    let contracts = if mode == "audit" {
        "[dockerfile-and-base-image, max-age, sbom-required, signed-by, slsa-provenance, vuln-threshold]"
    } else {
        "[needs-provenance]"
    };
    let s = Server::start(Setup {
        bindings: format!("  - name: down\n    contracts: {contracts}\n    mode: {mode}\n"),
        registry: Some(registry.clone()),
        builtin: mode == "audit",
        ..Setup::default()
    });
    let image = format!("{registry}/adm-down/app:v1");
    let v = s.review(
        "/validate",
        &review_of(&[
            "--workload",
            "pod/web",
            "--image",
            &image,
            "--namespace",
            "prod",
        ]),
    );
    // The log has the error; so must the answer.
    assert!(
        s.decisions()
            .iter()
            .any(|d| d.to_string().contains(&registry)),
        "the decision log does not name the registry"
    );
    (v, image)
}

#[test]
fn audit_mode_annotates_what_could_not_be_verified_when_the_registry_is_down() {
    let (v, image) = review_with_registry_down("audit");
    assert!(allowed(&v), "audit mode denied: {v}");
    let note = response(&v)["auditAnnotations"]["provgate.dev/unverified"]
        .as_str()
        .unwrap_or_else(|| panic!("no provgate.dev/unverified annotation: {v}"))
        .to_owned();
    let registry = image.split('/').next().unwrap();
    assert!(note.starts_with(&format!("web={image}: ")), "{note}");
    assert!(note.contains(registry), "the reason is missing: {note}");
    assert!(note.chars().count() <= 4096, "{note}");
}

#[test]
fn warn_mode_warns_about_what_could_not_be_verified_when_the_registry_is_down() {
    let (v, image) = review_with_registry_down("warn");
    assert!(allowed(&v), "warn mode denied: {v}");
    let w = warnings(&v);
    let registry = image.split('/').next().unwrap();
    let line = w
        .iter()
        .find(|w| w.contains("not verified"))
        .unwrap_or_else(|| panic!("no warning says the image was not verified: {w:?}"));
    assert!(
        line.contains("container \"web\"") && line.contains(&image) && line.contains(registry),
        "the warning must name the container, the image and the reason: {line}"
    );
    assert!(line.chars().count() <= 256, "{line}");
    assert!(
        response(&v)["auditAnnotations"]["provgate.dev/unverified"].is_string(),
        "{v}"
    );
}

fn pod(containers: Value, init: Value, ephemeral: Value, volumes: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "prod", "labels": {"app": "p"}},
        "spec": {"containers": containers, "initContainers": init, "ephemeralContainers": ephemeral, "volumes": volumes}})
}

#[test]
fn init_ephemeral_and_image_volume_containers_are_each_judged() {
    let s = server();
    let good = json!([{"name": "app", "image": signed().tagged}]);
    let bad_one = |name: &str| json!([{"name": name, "image": unsigned().tagged}]);
    let cases = [
        (
            "initContainers",
            pod(good.clone(), bad_one("init"), json!([]), json!([])),
        ),
        (
            "ephemeralContainers",
            pod(good.clone(), json!([]), bad_one("debug"), json!([])),
        ),
        (
            "image volume",
            pod(
                good.clone(),
                json!([]),
                json!([]),
                json!([{"name": "data", "image": {"reference": unsigned().tagged}}]),
            ),
        ),
    ];
    for (what, p) in cases {
        let v = s.review(
            "/validate",
            &object_review(s.dir.path(), &p, &["--namespace", "prod"]),
        );
        assert!(!allowed(&v), "{what}: an unsigned image was allowed: {v}");
        let m = message(&v);
        assert!(
            m.contains(&unsigned().tagged),
            "{what}: message does not name the image: {m}"
        );
    }
    let all_good = pod(
        good.clone(),
        json!([{"name": "init", "image": signed().tagged}]),
        json!([]),
        json!([]),
    );
    let v = s.review(
        "/validate",
        &object_review(s.dir.path(), &all_good, &["--namespace", "prod"]),
    );
    assert!(allowed(&v), "{v}");
}

#[test]
fn denial_message_names_the_container_the_image_the_requirement_and_the_fix() {
    let s = server();
    let p = pod(
        json!([{"name": "api", "image": unsigned().tagged}, {"name": "side", "image": signed().tagged}]),
        json!([]),
        json!([]),
        json!([]),
    );
    let v = s.review(
        "/validate",
        &object_review(s.dir.path(), &p, &["--namespace", "prod"]),
    );
    let m = message(&v);
    assert!(m.starts_with("provgate denied Pod prod/p:"), "{m}");
    assert!(m.contains("container \"api\""), "{m}");
    assert!(
        !m.contains("container \"side\""),
        "the compliant container is listed: {m}"
    );
    assert!(m.contains("(requirement slsa-provenance)"), "{m}");
    assert!(m.contains("Fix: attach SLSA provenance"), "{m}");
    assert!(
        m.len() < 2000,
        "message too long for kubectl: {} chars",
        m.len()
    );
}

#[test]
fn ephemeral_containers_subresource_judges_the_new_debug_container() {
    let s = server();
    let old = pod(
        json!([{"name": "app", "image": signed().tagged}]),
        json!([]),
        json!([]),
        json!([]),
    );
    let new = pod(
        json!([{"name": "app", "image": signed().tagged}]),
        json!([]),
        json!([{"name": "debugger", "image": unsigned().tagged}]),
        json!([]),
    );
    let old_f = temp_file(
        s.dir.path(),
        &format!("old-{}.json", rand_suffix()),
        &old.to_string(),
    );
    let v = s.review(
        "/validate",
        &object_review(
            s.dir.path(),
            &new,
            &[
                "--namespace",
                "prod",
                "--operation",
                "UPDATE",
                "--old",
                old_f.to_str().unwrap(),
                "--sub-resource",
                "ephemeralcontainers",
            ],
        ),
    );
    assert!(!allowed(&v), "an unsigned debug container was allowed: {v}");
    assert!(message(&v).contains("debugger"), "{}", message(&v));
}

#[test]
fn update_judges_only_the_container_that_changed() {
    let s = server();
    // The old object already runs an unsigned sidecar (admitted before the
    // contract existed); the update changes only the app container.
    let old = pod(
        json!([{"name": "app", "image": unsigned().tagged}, {"name": "legacy", "image": unsigned().tagged}]),
        json!([]),
        json!([]),
        json!([]),
    );
    let new = pod(
        json!([{"name": "app", "image": signed().tagged}, {"name": "legacy", "image": unsigned().tagged}]),
        json!([]),
        json!([]),
        json!([]),
    );
    let old_f = temp_file(
        s.dir.path(),
        &format!("old-{}.json", rand_suffix()),
        &old.to_string(),
    );
    let v = s.review(
        "/validate",
        &object_review(
            s.dir.path(),
            &new,
            &[
                "--namespace",
                "prod",
                "--operation",
                "UPDATE",
                "--old",
                old_f.to_str().unwrap(),
            ],
        ),
    );
    assert!(allowed(&v), "unchanged legacy container was judged: {v}");
    // Changing the legacy container to another unsigned image is judged.
    let other = unsigned_image("adm-other");
    let new2 = pod(
        json!([{"name": "app", "image": signed().tagged}, {"name": "legacy", "image": other.tagged}]),
        json!([]),
        json!([]),
        json!([]),
    );
    let v = s.review(
        "/validate",
        &object_review(
            s.dir.path(),
            &new2,
            &[
                "--namespace",
                "prod",
                "--operation",
                "UPDATE",
                "--old",
                old_f.to_str().unwrap(),
            ],
        ),
    );
    assert!(!allowed(&v), "a changed unsigned image was allowed: {v}");
}

#[test]
fn delete_is_allowed_without_judging() {
    let s = server();
    let body = review_of(&[
        "--deployment",
        "web",
        "--image",
        &unsigned().tagged,
        "--namespace",
        "prod",
        "--operation",
        "DELETE",
    ]);
    let v = s.review("/validate", &body);
    assert!(allowed(&v), "{v}");
}

#[test]
fn dry_run_is_judged_and_logged_as_a_dry_run() {
    let s = server();
    let body = review_of(&[
        "--deployment",
        "dry",
        "--image",
        &unsigned().tagged,
        "--namespace",
        "dryns",
        "--dry-run",
    ]);
    let v = s.review("/validate", &body);
    assert!(!allowed(&v), "{v}");
    let uid = response(&v)["uid"].as_str().unwrap().to_owned();
    let line = s
        .decisions()
        .into_iter()
        .find(|d| d["uid"] == uid.as_str())
        .expect("decision logged");
    assert_eq!(line["dryRun"], true);
    assert_eq!(line["allowed"], false);
}

#[test]
fn an_image_no_binding_covers_is_denied() {
    let setup = Setup {
        bindings: "  - name: only-team-a\n    contracts: [needs-provenance]\n    mode: enforce\n    match: {namespaces: [team-a]}\n".into(),
        extra: "unmatched: deny\n".into(),
        ..Setup::default()
    };
    let s = Server::start(setup);
    let v = s.review(
        "/validate",
        &review_of(&[
            "--deployment",
            "web",
            "--image",
            &signed().tagged,
            "--namespace",
            "team-b",
        ]),
    );
    assert!(!allowed(&v), "an unmatched image was allowed: {v}");
    assert!(
        message(&v).contains("no contract binding covers this image"),
        "{}",
        message(&v)
    );
    let v = s.review(
        "/validate",
        &review_of(&[
            "--deployment",
            "web",
            "--image",
            &signed().tagged,
            "--namespace",
            "team-a",
        ]),
    );
    assert!(allowed(&v), "{v}");
}

#[test]
fn warn_mode_allows_with_warnings() {
    let setup = Setup {
        bindings: "  - name: soft\n    contracts: [needs-provenance]\n    mode: warn\n".into(),
        ..Setup::default()
    };
    let s = Server::start(setup);
    let v = s.review(
        "/validate",
        &review_of(&[
            "--deployment",
            "web",
            "--image",
            &unsigned().tagged,
            "--namespace",
            "prod",
        ]),
    );
    assert!(allowed(&v), "{v}");
    let w = warnings(&v);
    assert!(
        w.iter()
            .any(|w| w.contains("slsa-provenance") && w.contains("Fix:")),
        "{w:?}"
    );
    assert!(w.iter().all(|w| w.chars().count() <= 256), "{w:?}");
}

#[test]
fn enforce_after_warns_before_its_date_and_denies_after_it() {
    let clock = std::sync::Arc::new(provgate::clock::FixedClock::new(
        "2026-06-01T00:00:00Z".parse().unwrap(),
    ));
    let setup = Setup {
        bindings: "  - name: rollout\n    contracts: [needs-provenance]\n    mode: enforce\n    enforce_after: \"2026-09-01T00:00:00Z\"\n".into(),
        clock: Some(clock.clone()),
        ..Setup::default()
    };
    let s = Server::start(setup);
    let body = || {
        review_of(&[
            "--deployment",
            "web",
            "--image",
            &unsigned().tagged,
            "--namespace",
            "prod",
        ])
    };
    let v = s.review("/validate", &body());
    assert!(allowed(&v), "denied before enforce_after: {v}");
    let w = warnings(&v).join("\n");
    assert!(w.contains("will be enforced from 2026-09-01"), "{w}");
    clock.set("2026-09-02T00:00:00Z".parse().unwrap());
    let v = s.review("/validate", &body());
    assert!(!allowed(&v), "allowed after enforce_after: {v}");
}

fn apply_patch(object: &Value, patch_b64: &str) -> Value {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch_b64)
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    let mut o = object.clone();
    json_patch::patch(&mut o, &patch).unwrap();
    o
}

#[test]
fn mutation_pins_the_verified_digest_and_validation_judges_the_pinned_image() {
    let setup = Setup {
        bindings: "  - name: prod\n    contracts: [needs-provenance]\n    mode: enforce\n    pinDigests: true\n".into(),
        ..Setup::default()
    };
    let s = Server::start(setup);
    let p = pod(
        json!([{"name": "app", "image": signed().tagged}]),
        json!([]),
        json!([]),
        json!([]),
    );
    let v = s.review(
        "/mutate",
        &object_review(s.dir.path(), &p, &["--namespace", "prod"]),
    );
    assert!(allowed(&v), "{v}");
    assert_eq!(response(&v)["patchType"], "JSONPatch");
    let patched = apply_patch(&p, response(&v)["patch"].as_str().expect("a patch"));
    let pinned = patched["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(pinned, format!("{}@{}", signed().tagged, signed().digest));
    // Validation of the pinned object re-checks the digest.
    let v = s.review(
        "/validate",
        &object_review(s.dir.path(), &patched, &["--namespace", "prod"]),
    );
    assert!(allowed(&v), "{v}");
    // A later mutator swapping in another digest under the same tag is caught.
    let mut swapped = patched.clone();
    swapped["spec"]["containers"][0]["image"] = json!(format!(
        "{}@{}",
        signed().tagged,
        unsigned_digest_in_signed_repo()
    ));
    let v = s.review(
        "/validate",
        &object_review(s.dir.path(), &swapped, &["--namespace", "prod"]),
    );
    assert!(!allowed(&v), "a swapped digest passed validation: {v}");
    // An unsigned image gets no patch and is denied by mutation too.
    let bad = pod(
        json!([{"name": "app", "image": unsigned().tagged}]),
        json!([]),
        json!([]),
        json!([]),
    );
    let v = s.review(
        "/mutate",
        &object_review(s.dir.path(), &bad, &["--namespace", "prod"]),
    );
    assert!(!allowed(&v));
    assert!(response(&v).get("patch").is_none_or(|p| p.is_null()));
}

/// A digest pushed to the signed image's repository without evidence.
fn unsigned_digest_in_signed_repo() -> String {
    let k = crate::common::kit::kit();
    let repo_path = signed()
        .repo
        .trim_start_matches(&format!("{}/", k.registry()))
        .to_owned();
    k.push_image(
        &format!("{repo_path}:other"),
        &["--layers", "1", "--size", "1024", "--seed", "swap"],
    )
}

#[test]
fn the_kubernetes_round_trip_fixture_is_read_and_answered() {
    let s = server();
    let body = String::from_utf8(crate::common::read_fixture(
        "kubernetes/admission.k8s.io.v1.AdmissionReview.json",
    ))
    .unwrap();
    // As captured, its enum fields hold placeholders (`operationValue`):
    // refused as unreadable, with the uid echoed.
    let v = s.review("/validate", &body);
    assert_eq!(response(&v)["uid"], "uidValue");
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(response(&v)["allowed"], false);
    assert!(
        message(&v).contains("unreadable AdmissionReview"),
        "{}",
        message(&v)
    );
    // With a real operation, every other field of the shape is read: the
    // object (a custom kind without a pod template) is denied, naming the
    // kind, since provgate cannot judge it.
    let mut fixed: Value = serde_json::from_str(&body).unwrap();
    fixed["request"]["operation"] = json!("CREATE");
    let v = s.review("/validate", &fixed.to_string());
    assert_eq!(response(&v)["uid"], "uidValue");
    assert_eq!(response(&v)["allowed"], false, "{v}");
    assert!(
        message(&v).contains("groupValue/kindValue"),
        "{}",
        message(&v)
    );
}

#[test]
fn malformed_reviews_are_refused_not_allowed() {
    let s = server();
    for body in [
        "",
        "{",
        "[]",
        r#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}"#,
        r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
    ] {
        let v = s.review("/validate", body);
        assert_eq!(response(&v)["allowed"], false, "{body:?} → {v}");
    }
    // A pod spec of the wrong shape is denied, not treated as "no images".
    let bad = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": "nope"}});
    let v = s.review(
        "/validate",
        &object_review(
            s.dir.path(),
            &bad,
            &["--namespace", "prod", "--no-defaults"],
        ),
    );
    assert_eq!(response(&v)["allowed"], false, "{v}");
}

#[test]
fn health_readiness_and_metrics_endpoints() {
    let s = server();
    assert_eq!(s.get("/healthz").0, 200);
    assert_eq!(s.get("/readyz"), (200, "ready\n".into()));
    let _ = s.review(
        "/validate",
        &review_of(&[
            "--deployment",
            "m",
            "--image",
            &signed().tagged,
            "--namespace",
            "metrics",
        ]),
    );
    let m = s.metrics();
    for name in [
        "provgate_requests_total",
        "provgate_decisions_total",
        "provgate_contract_verdicts_total",
        "provgate_decision_duration_seconds",
        "provgate_registry_requests_total",
        "provgate_cache_requests_total",
        "provgate_verification_duration_seconds",
        "provgate_policy_duration_seconds",
    ] {
        assert!(m.contains(name), "{name} missing from /metrics");
    }
}

#[test]
fn namespace_label_bindings_use_the_namespaces_labels_only_when_trusted() {
    let api = crate::common::fakekube::FakeKube::start();
    api.kube.set_namespace(
        "pay",
        json!({"tier": "prod", "kubernetes.io/metadata.name": "pay"}),
    );
    api.kube
        .set_namespace("dev", json!({"kubernetes.io/metadata.name": "dev"}));
    let bindings = "  - name: prod-tier\n    contracts: [needs-provenance]\n    mode: enforce\n    match: {namespaceLabels: {tier: prod}}\n";
    let trusted = Server::start(Setup {
        bindings: bindings.into(),
        extra: format!(
            "unmatched: allow\nadmission: {{trustNamespaceLabels: true, apiServer: \"{}\"}}\n",
            api.url
        ),
        ..Setup::default()
    });
    let deploy = |ns: &str| {
        review_of(&[
            "--deployment",
            "web",
            "--image",
            &unsigned().tagged,
            "--namespace",
            ns,
        ])
    };
    let v = trusted.review("/validate", &deploy("pay"));
    assert!(
        !allowed(&v),
        "the label-selected binding did not apply: {v}"
    );
    let v = trusted.review("/validate", &deploy("dev"));
    assert!(allowed(&v), "{v}");
    // A namespace that cannot be read: its labels are unknown, the binding
    // does not match, and `unmatched` decides (here: allow; deny by default).
    let v = trusted.review("/validate", &deploy("ghost"));
    assert!(allowed(&v), "{v}");
    // Cached: a second review of `pay` does not read the namespace again.
    let gets = api.kube.namespace_gets();
    let _ = trusted.review("/validate", &deploy("pay"));
    assert_eq!(api.kube.namespace_gets(), gets);
    // Not opted in: namespace labels are never consulted.
    let untrusted = Server::start(Setup {
        bindings: bindings.into(),
        extra: format!(
            "unmatched: allow\nadmission: {{trustNamespaceLabels: false, apiServer: \"{}\"}}\n",
            api.url
        ),
        ..Setup::default()
    });
    assert!(allowed(&untrusted.review("/validate", &deploy("pay"))));
}
