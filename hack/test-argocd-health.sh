#!/usr/bin/env bash
# test-argocd-health.sh - runs the chart's Argo CD health check (Lua) against sample statuses,
# with the Lua interpreter from Debian's packages (installed here if missing, as root).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v lua5.4 >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "[argocd-health] installing lua5.4" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends lua5.4 >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends lua5.4 >/dev/null; }
  else
    echo "[argocd-health] SKIPPED: lua5.4 is not installed and cannot be installed here" >&2
    exit 0
  fi
fi
lua5.4 hack/test-argocd-health.lua charts/whatsapp-operator/health/argocd-health.lua
