//! Every image of a Kubernetes object, from typed objects.
//!
//! Containers, init containers, ephemeral containers and image volumes of a
//! Pod, and of the pod template of Deployment, ReplicaSet, StatefulSet,
//! DaemonSet, Job, CronJob, ReplicationController and PodTemplate (whose
//! template is at `template`, not `spec.template`). Other kinds are read
//! through their pod template (`spec.template` or
//! `spec.jobTemplate.spec.template`) when they have one; a kind with neither
//! gives `None`, which admission denies unless the kind is listed in
//! `admission.skipKinds`. Replica counts are never consulted: a
//! zero-replica Deployment is judged like any other.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    Pod, PodSpec, PodTemplate, PodTemplateSpec, ReplicationController,
};
use serde::de::DeserializeOwned;

/// Which list of a pod spec an image is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// `containers`.
    Container,
    /// `initContainers`.
    InitContainer,
    /// `ephemeralContainers`.
    EphemeralContainer,
    /// `volumes[].image`.
    ImageVolume,
}

impl Slot {
    fn field(self) -> &'static str {
        match self {
            Slot::Container => "containers",
            Slot::InitContainer => "initContainers",
            Slot::EphemeralContainer => "ephemeralContainers",
            Slot::ImageVolume => "volumes",
        }
    }
}

/// One image of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectImage {
    /// The image as written.
    pub image: String,
    /// The container or volume name.
    pub name: String,
    /// Its list.
    pub slot: Slot,
    /// JSON pointer to the image field (for patches).
    pub pointer: String,
}

impl ObjectImage {
    /// The use the engine judges: the image, its container, and where it
    /// sits in the object.
    pub fn to_use(&self) -> crate::engine::ImageUse {
        crate::engine::ImageUse {
            image: self.image.clone(),
            container: Some(self.name.clone()),
            path: self.pointer.clone(),
        }
    }
}

/// Why an object's images could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the {kind} object: {reason}")]
pub struct ImagesError {
    kind: String,
    reason: String,
}

/// The images of an object, or `None` when provgate knows no pod spec
/// location for the kind (admission denies those unless told to skip them).
pub fn images_of(
    kind: &str,
    object: &serde_json::Value,
) -> Result<Option<Vec<ObjectImage>>, ImagesError> {
    let err = |reason: String| ImagesError {
        kind: kind.to_owned(),
        reason,
    };
    fn typed<T: DeserializeOwned>(v: &serde_json::Value) -> Result<T, String> {
        T::deserialize(v).map_err(|e| e.to_string())
    }
    let (spec, base): (Option<PodSpec>, &str) = match kind {
        "Pod" => (typed::<Pod>(object).map_err(err)?.spec, "/spec"),
        "Deployment" => (
            typed::<Deployment>(object).map_err(err)?.spec.template.spec,
            "/spec/template/spec",
        ),
        "ReplicaSet" => (
            template(typed::<ReplicaSet>(object).map_err(err)?.spec.template),
            "/spec/template/spec",
        ),
        "StatefulSet" => (
            typed::<StatefulSet>(object)
                .map_err(err)?
                .spec
                .template
                .spec,
            "/spec/template/spec",
        ),
        "DaemonSet" => (
            typed::<DaemonSet>(object).map_err(err)?.spec.template.spec,
            "/spec/template/spec",
        ),
        "Job" => (
            template(typed::<Job>(object).map_err(err)?.spec.map(|s| s.template)),
            "/spec/template/spec",
        ),
        "CronJob" => (
            typed::<CronJob>(object)
                .map_err(err)?
                .spec
                .job_template
                .spec
                .and_then(|s| s.template.spec),
            "/spec/jobTemplate/spec/template/spec",
        ),
        "ReplicationController" => (
            template(
                typed::<ReplicationController>(object)
                    .map_err(err)?
                    .spec
                    .and_then(|s| s.template),
            ),
            "/spec/template/spec",
        ),
        "PodTemplate" => (
            template(typed::<PodTemplate>(object).map_err(err)?.template),
            "/template/spec",
        ),
        _ => {
            // Any other kind: through its pod template, if it has one.
            for (path, pointer) in [
                ("/spec/template", "/spec/template/spec"),
                (
                    "/spec/jobTemplate/spec/template",
                    "/spec/jobTemplate/spec/template/spec",
                ),
            ] {
                if let Some(t) = object.pointer(path) {
                    let t: PodTemplateSpec = typed(t).map_err(err)?;
                    return Ok(Some(
                        t.spec.map(|s| from_spec(&s, pointer)).unwrap_or_default(),
                    ));
                }
            }
            return Ok(None);
        }
    };
    Ok(Some(spec.map(|s| from_spec(&s, base)).unwrap_or_default()))
}

fn template(t: Option<PodTemplateSpec>) -> Option<PodSpec> {
    t.and_then(|t| t.spec)
}

fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn from_spec(spec: &PodSpec, base: &str) -> Vec<ObjectImage> {
    let mut out = Vec::new();
    let mut push = |slot: Slot, i: usize, name: &str, image: &Option<String>, suffix: &str| {
        if let Some(image) = image.as_deref().filter(|s| !s.is_empty()) {
            out.push(ObjectImage {
                image: image.to_owned(),
                name: name.to_owned(),
                slot,
                pointer: format!("{base}/{}/{i}/{suffix}", slot.field()),
            });
        }
    };
    for (i, c) in spec.containers.iter().enumerate() {
        push(Slot::Container, i, &c.name, &c.image, "image");
    }
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        push(Slot::InitContainer, i, &c.name, &c.image, "image");
    }
    for (i, c) in spec.ephemeral_containers.iter().flatten().enumerate() {
        push(Slot::EphemeralContainer, i, &c.name, &c.image, "image");
    }
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        if let Some(img) = &v.image {
            push(
                Slot::ImageVolume,
                i,
                &v.name,
                &img.reference,
                "image/reference",
            );
        }
    }
    // JSON pointers escape `~` and `/` in keys; ours are fixed field names,
    // so nothing to escape beyond the base (kept for completeness).
    let _ = escape;
    out
}

/// The images of `new` that are not the same image in the same slot and
/// name of `old` (UPDATE judges only what changed).
pub fn changed(new: Vec<ObjectImage>, old: &[ObjectImage]) -> Vec<ObjectImage> {
    new.into_iter()
        .filter(|n| {
            !old.iter()
                .any(|o| o.slot == n.slot && o.name == n.name && o.image == n.image)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_spec() -> serde_json::Value {
        json!({
            "containers": [{"name": "app", "image": "ghcr.io/acme/app:1"}, {"name": "side", "image": "nginx"}],
            "initContainers": [{"name": "init", "image": "busybox"}],
            "ephemeralContainers": [{"name": "debug", "image": "alpine"}],
            "volumes": [{"name": "cfg", "configMap": {"name": "x"}}, {"name": "data", "image": {"reference": "ghcr.io/acme/data:1"}}]
        })
    }

    #[test]
    fn every_list_of_a_pod_is_read() {
        let imgs = images_of("Pod", &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": pod_spec()}))
            .unwrap()
            .unwrap();
        let names: Vec<_> = imgs
            .iter()
            .map(|i| (i.name.as_str(), i.pointer.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("app", "/spec/containers/0/image"),
                ("side", "/spec/containers/1/image"),
                ("init", "/spec/initContainers/0/image"),
                ("debug", "/spec/ephemeralContainers/0/image"),
                ("data", "/spec/volumes/1/image/reference"),
            ]
        );
    }

    #[test]
    fn workload_templates_and_unknown_kinds_with_templates() {
        let dep =
            json!({"spec": {"replicas": 0, "selector": {}, "template": {"spec": pod_spec()}}});
        assert_eq!(images_of("Deployment", &dep).unwrap().unwrap().len(), 5);
        let cj = json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": pod_spec()}}}}});
        let imgs = images_of("CronJob", &cj).unwrap().unwrap();
        assert_eq!(
            imgs[0].pointer,
            "/spec/jobTemplate/spec/template/spec/containers/0/image"
        );
        let rollout = json!({"spec": {"template": {"spec": pod_spec()}}});
        assert_eq!(images_of("Rollout", &rollout).unwrap().unwrap().len(), 5);
        assert_eq!(images_of("ConfigMap", &json!({"data": {}})).unwrap(), None);
    }

    #[test]
    fn pod_templates_are_read_at_template_spec() {
        let pt = json!({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": pod_spec()}});
        let imgs = images_of("PodTemplate", &pt).unwrap().unwrap();
        assert_eq!(imgs.len(), 5);
        for i in &imgs {
            assert!(i.pointer.starts_with("/template/spec/"), "{}", i.pointer);
            assert_eq!(
                pt.pointer(&i.pointer).and_then(|v| v.as_str()),
                Some(i.image.as_str())
            );
        }
        // No template: no images, but read (not "no pod spec").
        assert_eq!(
            images_of("PodTemplate", &json!({"metadata": {"name": "t"}})).unwrap(),
            Some(vec![])
        );
        assert!(
            images_of(
                "PodTemplate",
                &json!({"template": {"spec": {"containers": 1}}})
            )
            .is_err()
        );
    }

    #[test]
    fn malformed_objects_are_errors_not_empty() {
        assert!(images_of("Pod", &json!({"spec": {"containers": "nope"}})).is_err());
        assert!(
            images_of(
                "Widget",
                &json!({"spec": {"template": {"spec": {"containers": 7}}}})
            )
            .is_err()
        );
    }

    #[test]
    fn update_keeps_only_changed_images() {
        let old = images_of("Pod", &json!({"spec": pod_spec()}))
            .unwrap()
            .unwrap();
        let mut spec = pod_spec();
        spec["containers"][1]["image"] = json!("nginx:2");
        let new = images_of("Pod", &json!({"spec": spec})).unwrap().unwrap();
        let ch = changed(new, &old);
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0].image, "nginx:2");
    }
}
