#!/usr/bin/env python3
"""Pod CREATE AdmissionReviews as a ReplicaSet controller makes them.

Part of benches/load.sh. Starts from a Pod AdmissionReview made by the test
kit (`testkit admission-review --pod ...`, which applies API-server
defaulting) and writes COUNT distinct reviews, one JSON document per line,
for wrk's rotation script (benches/rotate.lua) and the Rust harness
(examples/bench_harness).

Each review is what a validating webhook sees for a pod of a Deployment's
ReplicaSet: the name is generated (`api-7d9f8c6b5-x2kqz`, so
`generateName` is set), the pod and the request have fresh uids, the pod
carries the `pod-template-hash` label and an ownerReference to its
ReplicaSet, the ServiceAccount admission plugin has added the projected
token volume, and the request comes from the replicaset-controller. The
reviews cycle over several namespaces, each with its own Deployment and
ReplicaSet(s).

With `--placeholders`, the name suffix is `@S@` and the request and pod
uids are `@R@` and `@P@`: benches/rotate.lua fills them per request, so a
body reused by wrk still makes a pod never seen before.

Images: `--images A,B,C` gives every pod those containers (one per image);
`--image-list FILE` gives pod i the image on line i (one container).
"""

import argparse
import copy
import json
import random
import sys
import uuid

# Kubernetes' rand.SafeEncodeString alphabet (no vowels, no 0/1/3).
ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def rand_str(rng, n):
    return "".join(rng.choice(ALPHABET) for _ in range(n))


def rand_uuid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


CONTAINER_NAMES = ["api", "sidecar", "proxy", "agent", "worker", "cache"]


def container(template, name, image, i):
    c = copy.deepcopy(template)
    c["name"] = name
    c["image"] = image
    c["ports"] = [{"name": "http", "containerPort": 8080 + i, "protocol": "TCP"}]
    c["env"] = [
        {"name": "LOG_LEVEL", "value": "info"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}},
    ]
    c["resources"] = {
        "limits": {"cpu": "500m", "memory": "256Mi"},
        "requests": {"cpu": "100m", "memory": "128Mi"},
    }
    c["readinessProbe"] = {
        "httpGet": {"path": "/healthz", "port": 8080 + i, "scheme": "HTTP"},
        "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3,
    }
    c["volumeMounts"] = [{
        "name": "kube-api-access",
        "readOnly": True,
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
    }]
    return c


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--template", required=True, help="a kit Pod AdmissionReview (JSON)")
    ap.add_argument("--out", required=True, help="output file, one review per line")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--namespaces", default="payments,checkout,search,accounts")
    ap.add_argument("--replicasets", type=int, default=2, help="ReplicaSets per namespace (a rollout in progress)")
    ap.add_argument("--images", help="comma-separated images: every pod runs all of them")
    ap.add_argument("--image-list", help="file: pod i runs the image on line i")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--placeholders", action="store_true", help="@S@/@R@/@P@ for wrk to fill per request")
    a = ap.parse_args()
    if bool(a.images) == bool(a.image_list):
        sys.exit("give exactly one of --images and --image-list")
    rng = random.Random(a.seed)
    with open(a.template) as f:
        template = json.load(f)
    req = template["request"]
    if req["kind"]["kind"] != "Pod" or req["operation"] != "CREATE":
        sys.exit("the template must be a Pod CREATE review")
    c0 = req["object"]["spec"]["containers"][0]
    namespaces = [n for n in a.namespaces.split(",") if n]
    per_pod = a.images.split(",") if a.images else None
    listed = None
    if a.image_list:
        with open(a.image_list) as f:
            listed = [line.strip() for line in f if line.strip()]
        if len(listed) < a.count:
            sys.exit(f"--image-list has {len(listed)} images, fewer than --count {a.count}")
    # One Deployment per namespace and a few ReplicaSets of it.
    sets = []
    for ns in namespaces:
        dep_uid = rand_uuid(rng)
        for _ in range(a.replicasets):
            h = rand_str(rng, 10)
            sets.append({"ns": ns, "hash": h, "name": f"api-{h}", "uid": rand_uuid(rng), "dep": dep_uid})
    with open(a.out, "w") as out:
        for i in range(a.count):
            rs = sets[i % len(sets)]
            name = f"{rs['name']}-{'@S@' if a.placeholders else rand_str(rng, 5)}"
            images = per_pod if per_pod else [listed[i]]
            r = copy.deepcopy(template)
            q = r["request"]
            q["uid"] = "@R@" if a.placeholders else rand_uuid(rng)
            q["name"] = name
            q["namespace"] = rs["ns"]
            q["userInfo"] = {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "5b0b2c34-1f2e-4c59-9d0a-7a1c2b3d4e5f",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
            }
            q["options"] = {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
            o = q["object"]
            md = o["metadata"]
            md["name"] = name
            md["generateName"] = f"{rs['name']}-"
            md["namespace"] = rs["ns"]
            md["uid"] = "@P@" if a.placeholders else rand_uuid(rng)
            md["labels"] = {"app": "api", "app.kubernetes.io/name": "api", "pod-template-hash": rs["hash"]}
            md["annotations"] = {"kubectl.kubernetes.io/restartedAt": "2026-12-01T09:00:00Z"}
            md["ownerReferences"] = [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs["name"], "uid": rs["uid"],
                "controller": True, "blockOwnerDeletion": True,
            }]
            for m in md.get("managedFields", []):
                m["manager"] = "kube-controller-manager"
                m["fieldsV1"] = {"f:metadata": {"f:generateName": {}, "f:labels": {}, "f:ownerReferences": {}}, "f:spec": {}}
            spec = o["spec"]
            spec["containers"] = [container(c0, CONTAINER_NAMES[j % len(CONTAINER_NAMES)] + ("" if j < len(CONTAINER_NAMES) else str(j)), img, j)
                                  for j, img in enumerate(images)]
            spec["volumes"] = [{"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ]}}]
            out.write(json.dumps(r, separators=(",", ":")))
            out.write("\n")


if __name__ == "__main__":
    main()
