#!/usr/bin/env bash
# install-cargo-deny.sh - make sure cargo-deny $WAO_CARGO_DENY_VERSION is on PATH (cargo install
# --locked from crates.io, into ~/.cargo/bin; about 4 minutes on 2 cores the first time, then a
# no-op). Idempotent.
#   WAO_CARGO_DENY_VERSION   the pinned version (default 0.20.2)
set -euo pipefail
VERSION="${WAO_CARGO_DENY_VERSION:-0.20.2}"
log() { printf '[install-cargo-deny] %s\n' "$*" >&2; }

if [[ "$(cargo deny --version 2>/dev/null)" == "cargo-deny $VERSION" ]]; then exit 0; fi
log "cargo install --locked cargo-deny --version $VERSION"
CARGO_INCREMENTAL=0 cargo install --locked --quiet cargo-deny --version "$VERSION"
[[ "$(cargo deny --version)" == "cargo-deny $VERSION" ]] || { log "cargo-deny $VERSION is not the one on PATH"; exit 1; }
