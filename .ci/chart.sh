#!/usr/bin/env bash
# Lints and renders the Helm chart (charts/provgate) for every scenario in
# charts/ci/scenarios into target/chart-render/, which tests/it/chart.rs reads.
#
# Helm itself comes from helm-sdkpy (Helm's Go library bundled for Python),
# installed in a venv that is reused across runs. helm-sdkpy declares
# Python >= 3.12 but works on 3.11, hence --ignore-requires-python.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${PROVGATE_TESTKIT_HOME:-$HOME/.cache}/helm-venv"
reqs="helm-sdkpy==0.1.32 PyYAML==6.0.4"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.provgate-reqs" 2>/dev/null)" != "$reqs" ]; then
  echo "chart.sh: installing $reqs into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install --quiet --disable-pip-version-check --ignore-requires-python $reqs
  echo "$reqs" > "$venv/.provgate-reqs"
fi

exec "$venv/bin/python" charts/ci/render.py \
  --chart charts/provgate \
  --scenarios charts/ci/scenarios \
  --out target/chart-render
