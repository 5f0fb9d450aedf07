#!/usr/bin/env bash
# twilio-coverage.sh [TEST-RUNNER ARGS...] - which Twilio operations the simulator implements,
# which ones the operator calls, and which statuses the tests exercise.
#
# Runs the whole test suite (nextest if installed, else cargo test; against the local control
# plane like `make test-integration`) with TWILIO_SIM_COVERAGE_FILE set, so that the simulator
# appends one JSON line per Twilio request; then prints the Markdown table and writes it to
# target/twilio-coverage.md (the raw log stays in target/twilio-coverage.jsonl).
# Exits with the test run's status: a failing suite still gets its (partial) table.
#   WAO_USE_EXISTING_CLUSTER=1 with KUBECONFIG  run against that cluster instead
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO="${CARGO:-cargo}"
log() { printf '[twilio-coverage] %s\n' "$*" >&2; }

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
mkdir -p "$target_dir"
target_dir=$(cd "$target_dir" && pwd)
jsonl="$target_dir/twilio-coverage.jsonl"
table="$target_dir/twilio-coverage.md"

TWILIO_OAI_SPEC_DIR="${TWILIO_OAI_SPEC_DIR:-$(hack/fetch-twilio-specs.sh)}"
export TWILIO_OAI_SPEC_DIR

if command -v cargo-nextest >/dev/null; then
  runner=(nextest run --workspace --no-fail-fast)
else
  runner=(test --workspace --no-fail-fast)
fi

: > "$jsonl"
log "running the test suite with TWILIO_SIM_COVERAGE_FILE=$jsonl"
rc=0
TWILIO_SIM_COVERAGE_FILE="$jsonl" hack/with-control-plane.sh "$CARGO" "${runner[@]}" "$@" || rc=$?
((rc == 0)) || log "the test suite failed (exit $rc); the table covers the tests that ran"

log "$(wc -l < "$jsonl") Twilio requests recorded"
env -u TWILIO_SIM_COVERAGE_FILE "$CARGO" run --quiet -p twilio-sim --bin twilio-sim-coverage -- \
  --input "$jsonl" --spec-dir "$TWILIO_OAI_SPEC_DIR" --out "$table"
log "table written to $table"
exit "$rc"
