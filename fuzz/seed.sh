#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from real material: the test kit's fixtures
# (Sigstore bundles from sigstore-python/-go/-rust/cosign, the Kubernetes
# AdmissionReview) and, when a kit is running ($TESTKIT_DIR, see
# ../../shared/testkit/README.md), live kit output: cosign .sig/.att layers
# with their annotations, manifests, indexes and AdmissionReviews.
#
#     fuzz/seed.sh                          # fixtures only
#     TESTKIT_DIR=$(../shared/testkit/up.sh) fuzz/seed.sh   # + live kit material
#     FUZZ_CORPUS=/tmp/seeds fuzz/seed.sh   # elsewhere (tests/it/fuzz_replay.rs does this)
#
# fuzz/corpus is gitignored; running this again only adds files.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kit=${TESTKIT_KIT:-$here/../../shared/testkit}
fx=$kit/fixtures
corpus=${FUZZ_CORPUS:-$here/corpus}
py=${PYTHON:-python3}
for t in bundle cosign_attestation cosign_signature statement manifest admission image_ref; do
  mkdir -p "$corpus/$t"
done

# put TARGET NAME < bytes
put() { cat > "$corpus/$1/$2"; }

# Bundles: every JSON bundle among the fixtures and conformance cases (one
# interpreter for all of them: a process per file takes a minute on a busy
# machine).
find "$fx" "$kit/conformance/assets" -type f \( -name '*.json' -o -name '*.sigstore' \) | sort \
  | "$py" -c '
import json, shutil, sys
out, n = sys.argv[1], 0
for f in sys.stdin.read().splitlines():
    try:
        b = json.load(open(f))
    except Exception:
        continue
    if isinstance(b, dict) and "mediaType" in b and "verificationMaterial" in b:
        n += 1
        shutil.copyfile(f, f"{out}/fixture-{n}.json")
print(f"bundle: {n} fixture bundles", file=sys.stderr)
' "$corpus/bundle"

# DSSE envelopes and statements out of those bundles; envelopes also as
# cosign .att layers (with and without annotations).
"$py" - "$corpus" <<'PY'
import base64, glob, json, os, sys
corpus = sys.argv[1]
n = 0
for f in sorted(glob.glob(os.path.join(corpus, "bundle", "*.json"))):
    b = json.load(open(f))
    env = b.get("dsseEnvelope")
    if not env:
        continue
    n += 1
    envelope = json.dumps(env).encode()
    open(os.path.join(corpus, "cosign_attestation", f"envelope-{n}.json"), "wb").write(envelope)
    try:
        vm = b.get("verificationMaterial", {})
        cert = (vm.get("certificate") or {}).get("rawBytes") or \
            ((vm.get("x509CertificateChain") or {}).get("certificates") or [{}])[0].get("rawBytes")
        if cert:
            pem = "-----BEGIN CERTIFICATE-----\n" + "\n".join(cert[i:i+64] for i in range(0, len(cert), 64)) + "\n-----END CERTIFICATE-----\n"
            ann = {"dev.sigstore.cosign/certificate": pem}
            entries = vm.get("tlogEntries") or []
            if entries and entries[0].get("inclusionPromise"):
                e = entries[0]
                ann["dev.sigstore.cosign/bundle"] = json.dumps({
                    "SignedEntryTimestamp": e["inclusionPromise"]["signedEntryTimestamp"],
                    "Payload": {"body": e.get("canonicalizedBody", ""), "integratedTime": int(e.get("integratedTime", 0)),
                                "logIndex": int(e.get("logIndex", 0)), "logID": base64.b64decode(e["logId"]["keyId"]).hex()},
                })
            open(os.path.join(corpus, "cosign_attestation", f"annotated-{n}"), "wb").write(
                envelope + b"\n--annotations--\n" + json.dumps(ann).encode())
    except Exception:
        pass
    try:
        open(os.path.join(corpus, "statement", f"statement-{n}.json"), "wb").write(base64.b64decode(env["payload"]))
    except Exception:
        pass
print(f"cosign_attestation/statement: {n} envelopes", file=sys.stderr)
PY
cp "$kit/conformance/assets/statement.json" "$corpus/statement/conformance-statement.json" 2>/dev/null || true

# Simple-signing payloads.
d=sha256:00c669552a5008487c579f75e6f965234e458745857b9de2dfa62bbdb3e61f0a
printf '{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/demo/app"},"image":{"docker-manifest-digest":"%s"},"type":"cosign container image signature"},"optional":null}' "$d" \
  | put cosign_signature simple-signing.json

# Manifests and indexes (the shapes discovery reads).
e=sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a
put manifest image.json <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$d","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"$d","size":32}]}
JSON
put manifest referrer.json <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"$e","size":2},"layers":[{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","digest":"$d","size":9000,"annotations":{"dev.sigstore.bundle.predicateType":"https://slsa.dev/provenance/v1"}}],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"$d","size":401}}
JSON
put manifest index.json <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"$d","size":401,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"$e","size":815,"artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json","annotations":{"dev.sigstore.bundle.content":"dsse-envelope"}}]}
JSON

# AdmissionReviews.
cp "$fx/kubernetes/admission.k8s.io.v1.AdmissionReview.json" "$corpus/admission/fixture.json"
# A PodTemplate (its template is at .template, not .spec.template) and a
# kind without a pod spec, as the API server would send them.
review() { # KIND OBJECT
  printf '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"%s"},"resource":{"group":"","version":"v1","resource":"x"},"operation":"CREATE","userInfo":{},"object":%s}}' "$1" "$2"
}
review PodTemplate '{"apiVersion":"v1","kind":"PodTemplate","metadata":{"name":"t"},"template":{"spec":{"containers":[{"name":"app","image":"ghcr.io/acme/app:1"}],"initContainers":[{"name":"i","image":"busybox"}],"volumes":[{"name":"d","image":{"reference":"ghcr.io/acme/data:1"}}]}}}' \
  | put admission podtemplate.json
review Widget '{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"},"spec":{"pod":{"containers":[{"name":"app","image":"nginx"}]}}}' \
  | put admission widget.json

# Image references.
i=0
for r in nginx nginx:1.27 library/nginx docker.io/library/nginx:latest index.docker.io/acme/app:1 \
         ghcr.io/acme/app@$d ghcr.io/acme/app:v1@$d 127.0.0.1:5000/demo/app:v1 localhost/x \
         "[::1]:5000/a/b:c" registry.example.com:443/a/b/c/d:tag-1.2_3 "$d" sha512:abc \
         registry-1.docker.io/b registry-1.docker.io/library/nginx:1 docker.io/b index.docker.io/b \
         Docker.io/b localhost:5000/a@$d; do
  i=$((i+1)); printf '%s' "$r" | put image_ref "ref-$i"
done

# Live material from a running kit.
if [ -n "${TESTKIT_DIR:-}" ] && [ -f "$TESTKIT_DIR/env.json" ]; then
  tk=$kit/bin/testkit
  reg=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["TESTKIT_REGISTRY"])' "$TESTKIT_DIR/env.json")
  url=http://$reg
  auth=$("$py" -c 'import json,sys; e=json.load(open(sys.argv[1])); print(e["TESTKIT_REGISTRY_USER"]+":"+e["TESTKIT_REGISTRY_PASS"])' "$TESTKIT_DIR/env.json")
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  repo=fuzzseed$$/app
  dig=$("$tk" push-image "$repo:v1" 2>/dev/null)
  idx=$("$tk" push-image "$repo:multi" --index 2>/dev/null)
  "$tk" gen-key "$tmp/keys" --password pw >/dev/null 2>&1
  echo '{"buildDefinition":{"buildType":"https://example.com/build/v1"},"runDetails":{}}' > "$tmp/pred.json"
  "$tk" cosign-sig "$reg/$repo@$dig" --key "$tmp/keys/cosign.key" --password pw >/dev/null 2>&1
  "$tk" cosign-att "$reg/$repo@$dig" --key "$tmp/keys/cosign.key" --password pw \
      --predicate-type https://slsa.dev/provenance/v1 --predicate "$tmp/pred.json" >/dev/null 2>&1
  "$tk" sign-provenance "$reg/$repo@$dig" --identity https://github.com/acme/app/.github/workflows/build.yml@refs/heads/main \
      --issuer https://token.actions.githubusercontent.com --out "$tmp/prov.json" >/dev/null 2>&1
  cp "$tmp/prov.json" "$corpus/bundle/kit-provenance.json"
  "$tk" attach "$reg/$repo@$dig" "$tmp/prov.json" >/dev/null 2>&1
  get() { curl -sSf -u "$auth" -H "Accept: $2" "$url/v2/$repo/$1"; }
  accept='application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json'
  get "manifests/$dig" "$accept" | put manifest kit-image.json
  get "manifests/$idx" "$accept" | put manifest kit-index.json
  get "manifests/sha256-${dig#sha256:}" "$accept" | put manifest kit-tag-schema.json
  for s in sig att; do
    get "manifests/sha256-${dig#sha256:}.$s" "$accept" > "$tmp/$s.json"
    cp "$tmp/$s.json" "$corpus/manifest/kit-cosign-$s.json"
    layer=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"])' "$tmp/$s.json")
    get "blobs/$layer" application/octet-stream > "$tmp/$s.layer"
    "$py" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["layers"][0].get("annotations",{})),end="")' "$tmp/$s.json" > "$tmp/$s.ann"
    target=cosign_signature; [ "$s" = att ] && target=cosign_attestation
    { cat "$tmp/$s.layer"; printf '\n--annotations--\n'; cat "$tmp/$s.ann"; } | put $target "kit-$s"
  done
  "$tk" admission-review --deployment web --image "$reg/$repo@$dig" --init-image "$reg/$repo:v1" --namespace prod \
      | put admission kit-deployment.json
  "$tk" admission-review --workload cronjob/nightly --image "$reg/$repo:v1" | put admission kit-cronjob.json
  echo "live kit material from $reg/$repo" >&2
fi
for t in "$corpus"/*; do echo "$(basename "$t"): $(ls "$t" | wc -l) files" >&2; done
