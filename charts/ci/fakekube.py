"""A loopback stand-in for the Kubernetes API, just enough for Helm's
install and upgrade actions.

helm-sdkpy exposes Helm's Go library (install, upgrade, lint, ...) but no
`helm template`: rendering a chart with values needs a release action, and a
release action needs an API server. This one serves static discovery for the
kinds the chart uses, keeps created objects in memory (so `lookup` sees what
an earlier install created, as in a real upgrade), and records every write.

It listens on 127.0.0.1 only, speaks plain HTTP, checks nothing about
authentication, and never validates object schemas: the Rust test
(tests/it/chart.rs) does that with the k8s-openapi types.
"""

from __future__ import annotations

import copy
import http.server
import json
import threading
import urllib.parse

# group/version -> [(plural, kind, namespaced)]
RESOURCES: dict[str, list[tuple[str, str, bool]]] = {
    "v1": [
        ("namespaces", "Namespace", False),
        ("configmaps", "ConfigMap", True),
        ("secrets", "Secret", True),
        ("services", "Service", True),
        ("serviceaccounts", "ServiceAccount", True),
        ("pods", "Pod", True),
        ("replicationcontrollers", "ReplicationController", True),
    ],
    "apps/v1": [
        ("deployments", "Deployment", True),
        ("replicasets", "ReplicaSet", True),
        ("statefulsets", "StatefulSet", True),
        ("daemonsets", "DaemonSet", True),
    ],
    "batch/v1": [("jobs", "Job", True), ("cronjobs", "CronJob", True)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "networking.k8s.io/v1": [("networkpolicies", "NetworkPolicy", True)],
    "rbac.authorization.k8s.io/v1": [
        ("clusterroles", "ClusterRole", False),
        ("clusterrolebindings", "ClusterRoleBinding", False),
        ("roles", "Role", True),
        ("rolebindings", "RoleBinding", True),
    ],
    "admissionregistration.k8s.io/v1": [
        ("validatingwebhookconfigurations", "ValidatingWebhookConfiguration", False),
        ("mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False),
    ],
    "cert-manager.io/v1": [
        ("issuers", "Issuer", True),
        ("clusterissuers", "ClusterIssuer", False),
        ("certificates", "Certificate", True),
    ],
    "monitoring.coreos.com/v1": [("servicemonitors", "ServiceMonitor", True)],
}

VERSION = {"major": "1", "minor": "34", "gitVersion": "v1.34.0", "platform": "linux/amd64"}


def _status(code: int, reason: str, message: str) -> dict:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "reason": reason,
        "message": message,
        "code": code,
    }


def _merge_patch(target, patch):
    """RFC 7386 merge patch; close enough to a strategic merge patch for a
    store whose contents nobody but Helm reads back."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$"):
            continue
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge_patch(out.get(k), v)
    return out


def _selector_matches(selector: str, labels: dict) -> bool:
    for term in filter(None, selector.split(",")):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            k = k.rstrip("=")
            if labels.get(k) != v:
                return False
        elif labels.get(term) is None:
            return False
    return True


class Store:
    """Objects by (group/version, plural, namespace or "", name)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.objects: dict[tuple[str, str, str, str], dict] = {}
        self.writes: list[tuple[str, str]] = []
        self.rv = 0

    def next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "fakekube/1"
    protocol_version = "HTTP/1.1"
    store: Store  # set on the subclass

    def log_message(self, *args) -> None:  # quiet
        pass

    # --- plumbing -----------------------------------------------------
    def _send(self, code: int, obj) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        return json.loads(raw) if raw else None

    def _route(self):
        """Returns (gv, plural, namespace, name, query) or a discovery doc."""
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        parts = [p for p in url.path.split("/") if p]
        if parts[:1] == ["api"]:
            gv, rest = "v1", parts[2:] if len(parts) >= 2 else None
            if len(parts) == 1:
                return ("discovery", {"kind": "APIVersions", "versions": ["v1"],
                                      "serverAddressByClientCIDRs": [
                                          {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
        elif parts[:1] == ["apis"]:
            if len(parts) == 1:
                return ("discovery", self._group_list())
            if len(parts) == 2:
                return ("discovery", self._group(parts[1]))
            gv, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        elif parts[:1] == ["version"]:
            return ("discovery", VERSION)
        else:
            return ("notfound", None)
        if gv not in RESOURCES:
            return ("notfound", None)
        if not rest:
            return ("discovery", self._resource_list(gv))
        ns = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            ns, rest = rest[1], rest[2:]
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else ""
        if not any(p == plural for p, _, _ in RESOURCES[gv]):
            return ("notfound", None)
        return ("object", (gv, plural, ns, name, query))

    @staticmethod
    def _group_list():
        groups = []
        for gv in RESOURCES:
            if "/" not in gv:
                continue
            g, v = gv.split("/")
            groups.append({"name": g, "versions": [{"groupVersion": gv, "version": v}],
                           "preferredVersion": {"groupVersion": gv, "version": v}})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def _group(self, name):
        for g in self._group_list()["groups"]:
            if g["name"] == name:
                return {"kind": "APIGroup", "apiVersion": "v1", **g}
        return None

    @staticmethod
    def _resource_list(gv):
        verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": [
                {"name": p, "singularName": k.lower(), "namespaced": n, "kind": k, "verbs": verbs}
                for p, k, n in RESOURCES[gv]
            ],
        }

    # --- verbs --------------------------------------------------------
    def do_GET(self):  # noqa: N802
        kind, val = self._route()
        if kind == "discovery":
            return self._send(200, val) if val is not None else self._send(404, _status(404, "NotFound", "no such group"))
        if kind == "notfound":
            return self._send(404, _status(404, "NotFound", self.path))
        gv, plural, ns, name, query = val
        with self.store.lock:
            if name:
                obj = self.store.objects.get((gv, plural, ns, name))
                if obj is None:
                    return self._send(404, _status(404, "NotFound", f"{plural} {name!r} not found"))
                return self._send(200, obj)
            sel = (query.get("labelSelector") or [""])[0]
            items = [
                o for (g, p, n, _), o in sorted(self.store.objects.items())
                if g == gv and p == plural and (not ns or n == ns)
                and _selector_matches(sel, o.get("metadata", {}).get("labels") or {})
            ]
        kind_name = next(k for p, k, _ in RESOURCES[gv] if p == plural)
        return self._send(200, {"kind": kind_name + "List", "apiVersion": gv,
                                "metadata": {"resourceVersion": str(self.store.rv)}, "items": items})

    def _write(self, verb: str):
        kind, val = self._route()
        if kind != "object":
            return self._send(404, _status(404, "NotFound", self.path))
        gv, plural, ns, name, _ = val
        body = self._body()
        with self.store.lock:
            if verb == "POST":
                name = (body.get("metadata") or {}).get("name", "")
                key = (gv, plural, ns, name)
                if key in self.store.objects:
                    return self._send(409, _status(409, "AlreadyExists", f"{plural} {name!r} already exists"))
                obj = body
            else:
                key = (gv, plural, ns, name)
                old = self.store.objects.get(key)
                if verb == "DELETE":
                    if old is None:
                        return self._send(404, _status(404, "NotFound", name))
                    del self.store.objects[key]
                    self.store.writes.append((verb, "/".join(filter(None, key))))
                    return self._send(200, old)
                if old is None and verb == "PATCH":
                    return self._send(404, _status(404, "NotFound", name))
                obj = body if verb == "PUT" else _merge_patch(old, body)
            meta = obj.setdefault("metadata", {})
            if ns:
                meta["namespace"] = ns
            meta["resourceVersion"] = self.store.next_rv()
            meta.setdefault("uid", f"00000000-0000-0000-0000-{self.store.rv:012d}")
            self.store.objects[key] = obj
            self.store.writes.append((verb, "/".join(filter(None, key))))
        return self._send(201 if verb == "POST" else 200, obj)

    def do_POST(self):  # noqa: N802
        self._write("POST")

    def do_PUT(self):  # noqa: N802
        self._write("PUT")

    def do_PATCH(self):  # noqa: N802
        self._write("PATCH")

    def do_DELETE(self):  # noqa: N802
        self._write("DELETE")


class FakeKube:
    """A running fake API server; use as a context manager."""

    def __init__(self) -> None:
        self.store = Store()
        handler = type("Handler", (_Handler,), {"store": self.store})
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def kubeconfig(self, namespace: str) -> str:
        return json.dumps({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}],
            "current-context": "fake",
        })

    def __enter__(self) -> "FakeKube":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
