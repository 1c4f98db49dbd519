#!/usr/bin/env bash
# Load benchmark of `provgate serve` (release build) against the test kit:
#
#   1. warm admission of a 3-container Deployment (all images signed, caches
#      warm) on POST /validate, compared in the same run with POST
#      /noop/validate, which parses the same AdmissionReview (and extracts its
#      images) but judges nothing;
#   2. cold admission: N fresh signed images, each reviewed once: latency and
#      registry requests per review (from provgate_registry_requests_total).
#
# Needs wrk (apt-get install wrk) and the kit (../shared/testkit/install.sh).
# Usage: benches/load.sh [DURATION_SECONDS] [CONNECTIONS] [COLD_IMAGES]
# Prints a Markdown section for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-10}
conns=${2:-16}
cold_n=${3:-20}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }

cargo build --release --bin provgate >&2
bin=target/release/provgate
work=$(mktemp -d)
kit=$(../shared/testkit/up.sh --owner-pid $$)
trap '../shared/testkit/down.sh "$kit" >/dev/null 2>&1 || true; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
set -a; . "$kit/env"; set +a
export TESTKIT_DIR=$kit
tk=../shared/testkit/bin/testkit
id=https://github.com/acme/app/.github/workflows/build.yml@refs/heads/main
iss=https://token.actions.githubusercontent.com

signed() { # repo -> prints registry/repo:v1, with provenance attached
  local repo=$1 d
  d=$($tk push-image "$repo:v1" --layers 1 --size 4096 --seed "$repo" 2>/dev/null)
  $tk sign-provenance "$TESTKIT_REGISTRY/$repo@$d" --identity "$id" --issuer "$iss" --out "$work/$RANDOM.json" 2>/dev/null >/dev/null
  local b; b=$(ls -t "$work"/*.json | head -1)
  $tk attach "$TESTKIT_REGISTRY/$repo@$d" "$b" >/dev/null 2>&1
  echo "$TESTKIT_REGISTRY/$repo:v1"
}

mkdir -p "$work/contracts/needs-provenance"
cat > "$work/contracts/needs-provenance/contract.yaml" <<EOF
name: needs-provenance
version: "1"
authorities:
  - name: ci
    keyless: {issuer: "$iss", subject: "$id"}
EOF
cat > "$work/contracts/needs-provenance/policy.rego" <<'EOF'
package provgate.contract

deny contains {"msg": "no SLSA provenance", "requirement": "slsa-provenance", "fix": "attach provenance"} if {
	not has_provenance
}

has_provenance if {
	some a in input.attestations
	a.predicateType == "https://slsa.dev/provenance/v1"
}
EOF
auth=$(printf %s "$TESTKIT_REGISTRY_USER:$TESTKIT_REGISTRY_PASS" | base64 -w0)
echo "{\"auths\":{\"$TESTKIT_REGISTRY\":{\"auth\":\"$auth\"}}}" > "$work/docker.json"
$bin certs generate --dns localhost --dns 127.0.0.1 --out "$work/certs" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/config.yaml" <<EOF
server: {listen: "127.0.0.1:$port", tls: {certFile: certs/tls.crt, keyFile: certs/tls.key}}
trust: {publicGood: false, github: false, roots: [{name: kit, path: "$TESTKIT_TRUSTED_ROOT"}]}
registries: {hosts: {"$TESTKIT_REGISTRY": {insecure: true}}}
credentials: [{name: kit, file: docker.json}]
contracts: {builtin: false, dirs: [contracts]}
decisionLog: {enabled: false}
bindings:
  - {name: prod, contracts: [needs-provenance], mode: enforce}
EOF
RUST_LOG=warn $bin serve --config "$work/config.yaml" --noop-endpoint 2>"$work/serve.log" &
pid=$!
base=https://127.0.0.1:$port
for _ in $(seq 100); do curl -sk "$base/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

# 1. Warm: three signed images, one review to warm the caches.
a=$(signed load/a); b=$(signed load/b); c=$(signed load/c)
$tk admission-review --deployment web --image "$a" --image "$b" --image "$c" --namespace prod > "$work/review.json"
allowed=$(curl -sk -X POST -H 'content-type: application/json' --data-binary @"$work/review.json" "$base/validate?timeout=10s" | python3 -c 'import json,sys; print(json.load(sys.stdin)["response"]["allowed"])')
[ "$allowed" = True ] || { echo "warm-up review was not allowed" >&2; exit 1; }
cat > "$work/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$work/review.json", "r"); wrk.body = f:read("*a"); f:close()
EOF
run() { wrk -t2 -c"$conns" -d"${dur}s" --latency -s "$work/post.lua" "$1" 2>&1; }
noop=$(run "$base/noop/validate")
warm=$(run "$base/validate?timeout=10s")
rps() { awk '/Requests\/sec/ {print $2}' <<<"$1"; }
lat() { awk -v p="$2" '$1==p {print $2}' <<<"$1"; }
errs() { awk '/Non-2xx|Socket errors/ {print}' <<<"$1"; }
noop_rps=$(rps "$noop"); warm_rps=$(rps "$warm")
ratio=$(python3 -c "print(f'{$warm_rps / $noop_rps:.2f}')")

# 2. Cold: fresh images, one review each.
metric() { curl -sk "$base/metrics" | awk '/^provgate_registry_requests_total\{/ {s+=$NF} END {print s+0}'; }
lat_ms=()
reqs=()
for i in $(seq "$cold_n"); do
  img=$(signed "cold/i$i")
  $tk admission-review --deployment w$i --image "$img" --namespace prod > "$work/cold.json"
  before=$(metric)
  t=$(curl -sk -o /dev/null -w '%{time_total}' -X POST -H 'content-type: application/json' --data-binary @"$work/cold.json" "$base/validate?timeout=10s")
  after=$(metric)
  lat_ms+=("$(python3 -c "print(round($t*1000,1))")")
  reqs+=("$((after - before))")
done
cold=$(python3 - "${lat_ms[@]}" <<'EOF'
import statistics, sys
v = sorted(float(x) for x in sys.argv[1:])
print(f"median {statistics.median(v):.1f} ms, p90 {v[int(len(v)*0.9)-1]:.1f} ms, max {v[-1]:.1f} ms")
EOF
)
reqs_summary=$(printf '%s\n' "${reqs[@]}" | sort -n | uniq -c | awk '{printf "%s×%s ", $1, $2}')

cat <<EOF
### Load: warm admission vs no-op (wrk, ${dur}s, ${conns} connections, 2 threads)

Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); wrk and provgate share the cores.

| endpoint | requests/s | p50 | p99 |
|---|---|---|---|
| \`/noop/validate\` (parse + image extraction only) | $noop_rps | $(lat "$noop" 50%) | $(lat "$noop" 99%) |
| \`/validate\`, 3-container Deployment, caches warm | $warm_rps | $(lat "$warm" 50%) | $(lat "$warm" 99%) |

Warm/no-op throughput ratio: **$ratio**. $(errs "$warm") $(errs "$noop")

### Cold admission (${cold_n} fresh signed images, one review each)

Latency: $cold. Registry requests per cold review (count×requests): $reqs_summary
EOF
