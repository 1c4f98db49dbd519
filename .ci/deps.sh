#!/usr/bin/env bash
# System packages the tests need beyond the test kit: redis-server (the
# shared-tier tests start real ones on loopback, on ports of their own).
set -euo pipefail
if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "redis-server is missing: run apt-get install -y redis-server as root" >&2
    exit 1
  fi
  apt-get install -y redis-server >/dev/null 2>&1 \
    || { apt-get update >/dev/null && apt-get install -y redis-server >/dev/null; }
  # The package may start a system service on 6379; the tests do not use it.
fi
redis-server --version
