#!/usr/bin/env bash
# Load benchmark of `provgate serve` (release build): the numbers of
# docs/benchmarks.md, all in one run, on this machine (wrk and provgate share
# the cores). Parts (all by default; --only PART[,PART] to pick):
#
#   warm   wrk, 16 connections, for each round:
#            noop       POST /noop/validate (parse + image extraction) over
#                       the realistic bodies: the baseline
#            realistic  Pod CREATEs as a ReplicaSet makes them (unique name,
#                       uids, pod-template-hash, ownerReferences, 4
#                       namespaces), 3 containers of 3 kit-signed images
#                       with provenance + SBOM, caches warm, the library
#                       slsa-provenance + sbom-required in enforce
#            noop-deployment / identical
#                       one 3-container Deployment review repeated, and its
#                       no-op (what the old benchmark measured)
#          reviews/s, ratio to the no-op, p50/p99, CPU per review (provgate's
#          utime+stime over the run / reviews), cache results per review.
#   burst  500 concurrent Pod reviews of one fresh (uncached) tagged image
#          with provenance + SBOM: discoveries, verifications, evaluations,
#          registry requests, latency. One fresh image per round.
#   cold   fresh tagged images with provenance + SBOM, one review each, one
#          at a time: registry requests per review (provgate's metrics) and
#          latency.
#   rss    provgate's VmRSS after warm-up, then after 1k and 10k distinct
#          cached digests, each with a key-signed SLSA provenance (~3.5 KiB
#          statement), served by an in-process registry (examples/
#          bench_harness registry) through the referrers API. A fresh
#          provgate per round.
#
# Needs wrk (apt-get install wrk) and the kit (../shared/testkit/install.sh).
# Usage: benches/load.sh [--only warm,burst,cold,rss] [--rounds 2]
#          [--duration 10] [--connections 16] [--burst 500] [--cold 10]
#          [--rss-digests 10000] [--out DIR] [--no-build] [--perf]
# --perf: record a flat CPU profile of provgate (perf record -F 997) during
# the first round's realistic run, into DIR/perf-realistic.txt; with
# PERF_CALLGRAPH=1 in the environment, with call graphs too, and an
# inclusive report in DIR/perf-realistic-inclusive.txt.
# Prints the Markdown of docs/benchmarks.md's measured sections (from
# benches/report.py); raw results stay in DIR (default target/bench/<time>).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

only=warm,burst,cold,rss
rounds=2
dur=10
conns=16
burst_n=500
cold_n=10
rss_n=10000
out=
build=1
perf=0
while [ $# -gt 0 ]; do
  case $1 in
    --only) only=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --duration) dur=$2; shift 2 ;;
    --connections) conns=$2; shift 2 ;;
    --burst) burst_n=$2; shift 2 ;;
    --cold) cold_n=$2; shift 2 ;;
    --rss-digests) rss_n=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --perf) perf=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
want() { [[ ",$only," == *",$1,"* ]]; }
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
out=${out:-target/bench/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
log() { echo "[load.sh $(date -u +%H:%M:%S)] $*" >&2; }

if [ "$build" = 1 ]; then
  log "release build"
  # Two invocations: together, the example's dev-dependencies would change
  # the features of the binary's dependencies and rebuild it.
  nice -n 5 cargo build --release --bin provgate >&2
  nice -n 5 cargo build --release --example bench_harness >&2
fi
bin=$root/target/release/provgate
harness=$root/target/release/examples/bench_harness
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${kit:-}" ] && "$root/../shared/testkit/down.sh" "$kit" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "load.sh: failed at line $LINENO; results so far in $out" >&2' ERR

# Machine notes, for the report.
{
  echo "{\"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
  echo " \"commit\": \"$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD 2>/dev/null || echo +dirty)\","
  echo " \"cores\": $(nproc), \"mem_gib\": $(awk '/MemTotal/ {printf "%.0f", $2/1048576}' /proc/meminfo),"
  echo " \"kernel\": \"$(uname -sr)\", \"rustc\": \"$(rustc --version 2>/dev/null)\", \"wrk\": \"$(wrk -v 2>&1 | head -1 | cut -c1-40)\","
  echo " \"loadavg_start\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"clk_tck\": $(getconf CLK_TCK),"
  echo " \"rounds\": $rounds, \"duration\": $dur, \"connections\": $conns, \"burst\": $burst_n, \"cold\": $cold_n, \"rss_digests\": $rss_n, \"only\": \"$only\"}"
} > "$out/machine.json"

log "test kit"
kit=$("$root/../shared/testkit/up.sh" --owner-pid $$)
set -a; . "$kit/env"; set +a
export TESTKIT_DIR=$kit
tk=$root/../shared/testkit/bin/testkit
id=https://github.com/acme/app/.github/workflows/build.yml@refs/heads/main
iss=https://token.actions.githubusercontent.com

# A kit Pod review: the template of every generated review.
cat > "$work/pod.yaml" <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: api-0000000000-00000, labels: {app: api}}
spec:
  containers:
  - {name: api, image: "example.invalid/api:v1"}
EOF
$tk admission-review --pod "$work/pod.yaml" --namespace payments > "$work/pod-template.json"
gen() { python3 "$root/benches/gen_reviews.py" --template "$work/pod-template.json" "$@"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# serve CONFIG LOG: starts provgate; sets $pid and $base.
serve() {
  RUST_LOG=warn "$bin" serve --config "$1" --noop-endpoint 2>"$2" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 200); do curl -sk "$base/readyz" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "provgate did not become ready; log:" >&2; cat "$2" >&2; exit 1
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
$bin certs generate --dns localhost --dns 127.0.0.1 --out "$work/certs" >/dev/null
ca=$work/certs/ca.crt
post() { "$harness" post --base "$base" --ca "$ca" "$@"; }

if want warm || want burst || want cold; then
  # signed REPO: pushes REPO:v1 with SLSA provenance (sigstore-js) and an
  # SPDX SBOM (sigstore-python) attached as referrers; prints the tag.
  cat > "$work/sbom.json" <<'EOF'
{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"acme/app","documentNamespace":"https://acme.example/spdx/app-1","creationInfo":{"created":"2026-12-01T09:00:00Z","creators":["Tool: syft-1.18.0"]},"packages":[
{"name":"alpine-baselayout","SPDXID":"SPDXRef-Package-1","versionInfo":"3.6.8-r1","downloadLocation":"NOASSERTION","licenseConcluded":"GPL-2.0-only","externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:apk/alpine/alpine-baselayout@3.6.8-r1?arch=x86_64"}]},
{"name":"busybox","SPDXID":"SPDXRef-Package-2","versionInfo":"1.37.0-r12","downloadLocation":"NOASSERTION","licenseConcluded":"GPL-2.0-only","externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:apk/alpine/busybox@1.37.0-r12?arch=x86_64"}]},
{"name":"ca-certificates","SPDXID":"SPDXRef-Package-3","versionInfo":"20241121-r1","downloadLocation":"NOASSERTION","licenseConcluded":"MPL-2.0 AND MIT","externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:apk/alpine/ca-certificates@20241121-r1?arch=x86_64"}]},
{"name":"musl","SPDXID":"SPDXRef-Package-4","versionInfo":"1.2.5-r9","downloadLocation":"NOASSERTION","licenseConcluded":"MIT","externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:apk/alpine/musl@1.2.5-r9?arch=x86_64"}]},
{"name":"openssl","SPDXID":"SPDXRef-Package-5","versionInfo":"3.3.3-r0","downloadLocation":"NOASSERTION","licenseConcluded":"Apache-2.0","externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:apk/alpine/libssl3@3.3.3-r0?arch=x86_64"}]},
{"name":"zlib","SPDXID":"SPDXRef-Package-6","versionInfo":"1.3.1-r2","downloadLocation":"NOASSERTION","licenseConcluded":"Zlib","externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:apk/alpine/zlib@1.3.1-r2?arch=x86_64"}]},
{"name":"github.com/acme/app","SPDXID":"SPDXRef-Package-7","versionInfo":"v1.4.2","downloadLocation":"NOASSERTION","licenseConcluded":"Apache-2.0","externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:golang/github.com/acme/app@v1.4.2"}]},
{"name":"golang.org/x/net","SPDXID":"SPDXRef-Package-8","versionInfo":"v0.33.0","downloadLocation":"NOASSERTION","licenseConcluded":"BSD-3-Clause","externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:golang/golang.org/x/net@v0.33.0"}]}
],"relationships":[{"spdxElementId":"SPDXRef-DOCUMENT","relationshipType":"DESCRIBES","relatedSpdxElement":"SPDXRef-Package-7"}]}
EOF
  # A kit step that fails is tried again (twice); its output goes to
  # DIR/kit.log.
  kitstep() {
    local i
    for i in 1 2 3; do
      "$tk" "$@" 2>>"$out/kit.log" && return 0
      echo "load.sh: testkit $1 failed (attempt $i)" >>"$out/kit.log"
      sleep 1
    done
    echo "testkit $1 failed three times; see $out/kit.log" >&2
    return 1
  }
  signed() {
    local repo=$1 d
    d=$(kitstep push-image "$repo:v1" --layers 1 --size 4096 --seed "$repo") || return 1
    kitstep sign-provenance "$TESTKIT_REGISTRY/$repo@$d" --identity "$id" --issuer "$iss" --out "$work/prov.json" >/dev/null || return 1
    kitstep attest "$TESTKIT_REGISTRY/$repo@$d" --predicate-type https://spdx.dev/Document --predicate "$work/sbom.json" \
      --identity "$id" --issuer "$iss" --out "$work/sbom.sigstore.json" >/dev/null || return 1
    kitstep attach "$TESTKIT_REGISTRY/$repo@$d" "$work/prov.json" >/dev/null || return 1
    kitstep attach "$TESTKIT_REGISTRY/$repo@$d" "$work/sbom.sigstore.json" >/dev/null || return 1
    echo "$TESTKIT_REGISTRY/$repo:v1"
  }
  log "kit images: 3 warm, $rounds burst, $((cold_n * rounds)) cold (provenance + SBOM each)"
  a=$(signed load/api) && b=$(signed load/sidecar) && c=$(signed load/proxy) || exit 1
  for r in $(seq "$rounds"); do
    want burst && signed "load/burst$r" > "$work/burst$r.image"
    if want cold; then
      for i in $(seq "$cold_n"); do signed "load/cold$r-$i"; done > "$work/cold$r.images"
    fi
  done

  auth=$(printf %s "$TESTKIT_REGISTRY_USER:$TESTKIT_REGISTRY_PASS" | base64 -w0)
  echo "{\"auths\":{\"$TESTKIT_REGISTRY\":{\"auth\":\"$auth\"}}}" > "$work/docker.json"
  port=$(free_port)
  base=https://127.0.0.1:$port
  # The library contracts, enforced, each with an organisation-scoped
  # authority (a world-trusting one is refused under enforce).
  cat > "$work/kit.yaml" <<EOF
server: {listen: "127.0.0.1:$port", tls: {certFile: certs/tls.crt, keyFile: certs/tls.key}}
trust: {publicGood: false, github: false, roots: [{name: kit, path: "$TESTKIT_TRUSTED_ROOT"}]}
registries: {hosts: {"$TESTKIT_REGISTRY": {insecure: true}}}
credentials: [{name: kit, file: docker.json}]
contracts: {builtin: true}
decisionLog: {enabled: false}
bindings:
  - name: prod
    contracts: [slsa-provenance, sbom-required]
    mode: enforce
    authorities:
      slsa-provenance: [{name: acme-ci, keyless: {issuer: "$iss", subject: "$id"}}]
      sbom-required: [{name: acme-ci, keyless: {issuer: "$iss", subject: "$id"}}]
EOF
  serve "$work/kit.yaml" "$out/serve-kit.log"
  kit_pid=$pid

  log "review bodies"
  gen --out "$work/realistic.jsonl" --count 10000 --images "$a,$b,$c" --placeholders
  gen --out "$work/check.jsonl" --count 200 --images "$a,$b,$c" --seed 7
  $tk admission-review --deployment web --image "$a" --image "$b" --image "$c" --namespace payments \
    | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin), separators=(",", ":")))' > "$work/identical.jsonl"

  # Warm-up: the three digests discovered and verified, every contract
  # evaluated once; 200 distinct pods must all be allowed.
  post --bodies "$work/check.jsonl" --concurrency 4 --expect-allowed > "$out/warmup.json"
  post --bodies "$work/identical.jsonl" --expect-allowed > /dev/null
fi

if want warm; then
  # run_wrk NAME BODIES URL-PATH: one wrk run with provgate's CPU time and
  # metrics before and after.
  run_wrk() {
    local name=$1 bodies=$2 path=$3 d=$out/$round
    mkdir -p "$d"
    curl -sk "$base/metrics" > "$d/$name.metrics.before"
    cat "/proc/$kit_pid/stat" > "$d/$name.stat.before"
    local prof=
    if [ "$perf" = 1 ] && [ "$name" = realistic ] && [ ! -f "$out/perf.data" ]; then
      # PERF_CALLGRAPH=1: also record call graphs (DWARF unwinding), and
      # write an inclusive (children) report beside the flat one.
      local cg=()
      [ "${PERF_CALLGRAPH:-0}" = 1 ] && cg=(--call-graph dwarf,16384)
      perf record -F 997 "${cg[@]}" -p "$kit_pid" -o "$out/perf.data" -- sleep "$dur" >/dev/null 2>&1 &
      prof=$!
    fi
    WRK_BODIES=$bodies wrk -t2 -c"$conns" -d"${dur}s" --latency -s "$root/benches/rotate.lua" "$base$path" > "$d/$name.wrk" 2>&1
    cat "/proc/$kit_pid/stat" > "$d/$name.stat.after"
    if [ -n "$prof" ]; then
      wait "$prof" || true
      perf report -i "$out/perf.data" --no-children --sort dso,symbol --stdio --percent-limit 0.5 2>/dev/null \
        | grep -v '^$' | sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//' > "$out/perf-realistic.txt" || true
      if [ "${PERF_CALLGRAPH:-0}" = 1 ]; then
        perf report -i "$out/perf.data" --children --sort symbol --stdio -g none --percent-limit 1 2>/dev/null \
          | grep -v '^$' > "$out/perf-realistic-inclusive.txt" || true
      fi
    fi
    curl -sk "$base/metrics" > "$d/$name.metrics.after"
    grep -E 'Requests/sec' "$d/$name.wrk" | sed "s/^/  $name: /" >&2
  }
  for round in $(seq "$rounds"); do
    round=round$round
    log "warm $round: noop, realistic, noop-deployment, identical (${dur}s each)"
    run_wrk noop "$work/realistic.jsonl" /noop/validate
    run_wrk realistic "$work/realistic.jsonl" "/validate?timeout=10s"
    run_wrk noop-deployment "$work/identical.jsonl" /noop/validate
    run_wrk identical "$work/identical.jsonl" "/validate?timeout=10s"
  done
fi

if want burst; then
  for r in $(seq "$rounds"); do
    log "burst round$r: $burst_n concurrent reviews of $(cat "$work/burst$r.image")"
    gen --out "$work/burst$r.jsonl" --count "$burst_n" --images "$(cat "$work/burst$r.image")" --seed "$((100 + r))"
    mkdir -p "$out/round$r"
    post --bodies "$work/burst$r.jsonl" --burst --expect-allowed > "$out/round$r/burst.json"
  done
fi

if want cold; then
  for r in $(seq "$rounds"); do
    log "cold round$r: $cold_n fresh images, one review each"
    gen --out "$work/cold$r.jsonl" --count "$cold_n" --image-list "$work/cold$r.images" --seed "$((200 + r))"
    mkdir -p "$out/round$r"
    post --bodies "$work/cold$r.jsonl" --concurrency 1 --per-request --expect-allowed > "$out/round$r/cold.json"
  done
fi
[ -n "${kit_pid:-}" ] && stop "$kit_pid"

if want rss; then
  log "rss: bench registry with $rss_n signed images"
  "$harness" registry --digests "$rss_n" --out "$work/reg" 2>"$out/registry.log" &
  pids+=("$!")
  for _ in $(seq 600); do [ -f "$work/reg/addr" ] && break; sleep 0.1; done
  [ -f "$work/reg/addr" ] || { cat "$out/registry.log" >&2; exit 1; }
  cp "$work/reg/sizes.json" "$out/rss-sizes.json"
  reg=$(cat "$work/reg/addr")
  gen --out "$work/rss.jsonl" --count "$rss_n" --image-list "$work/reg/images.txt" --namespaces payments --seed 300
  port=$(free_port)
  base=https://127.0.0.1:$port
  # One key authority, no tlog (the evidence is signed here, unlogged), so
  # the library contract's keyless/tlog checks are turned off; caches large
  # enough to hold every digest.
  cat > "$work/rss.yaml" <<EOF
server: {listen: "127.0.0.1:$port", tls: {certFile: certs/tls.crt, keyFile: certs/tls.key}}
trust: {publicGood: false, github: false, keys: [{name: bench, path: "$work/reg/key.pub.pem"}]}
registries: {hosts: {"$reg": {insecure: true}}}
contracts: {builtin: true}
decisionLog: {enabled: false}
caches: {maxEntries: $((rss_n * 2)), evidenceBytes: 4Gi}
bindings:
  - name: rss
    contracts: [slsa-provenance]
    mode: enforce
    authorities:
      slsa-provenance: [{name: bench-key, key: {name: bench}, tlog: optional}]
    parameters:
      slsa-provenance: {requireKeyless: false, requireTlog: false}
EOF
  k1=$((rss_n / 10))
  for r in $(seq "$rounds"); do
    log "rss round$r: fresh provgate; warm-up (no-op), then $k1 and $rss_n digests"
    mkdir -p "$out/round$r"
    serve "$work/rss.yaml" "$out/serve-rss$r.log"
    post --bodies "$work/rss.jsonl" --path /noop/validate --pid "$pid" > /dev/null
    sleep 1
    post --bodies "$work/rss.jsonl" --pid "$pid" --to 0 > "$out/round$r/rss-0.json"
    post --bodies "$work/rss.jsonl" --pid "$pid" --to "$k1" --expect-allowed > "$out/round$r/rss-fill-1k.json"
    sleep 1
    post --bodies "$work/rss.jsonl" --pid "$pid" --to 0 > "$out/round$r/rss-1k.json"
    post --bodies "$work/rss.jsonl" --pid "$pid" --from "$k1" --expect-allowed > "$out/round$r/rss-fill-10k.json"
    sleep 1
    post --bodies "$work/rss.jsonl" --pid "$pid" --to 0 > "$out/round$r/rss-10k.json"
    # Every digest must still be cached: a second pass discovers nothing.
    post --bodies "$work/rss.jsonl" --pid "$pid" --expect-allowed > "$out/round$r/rss-recheck.json"
    curl -sk "$base/metrics" > "$out/round$r/rss.metrics"
    stop "$pid"
  done
fi

log "report ($out)"
python3 "$root/benches/report.py" "$out"
