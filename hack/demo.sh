#!/usr/bin/env bash
# demo.sh up|down|status - the operator running against a local control plane and the Twilio
# simulator, with the sample channels of examples/ applied.
#
# State (pids, kubeconfig, logs) lives in .demo/. `make demo` runs `up`, `make demo-stop` `down`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
state="$root/.demo"
SIM_ADDR="${WAO_DEMO_SIM_ADDR:-127.0.0.1:18980}"
NS="${WAO_DEMO_NAMESPACE:-demo}"
say() { printf '\033[1;32m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

tools=$(hack/install-tools.sh)
kubectl() { "$tools/kubectl" "$@"; }

alive() { [[ -f "$state/$1.pid" ]] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; }
stop_pid() {
  local name=$1
  if alive "$name"; then
    local pid; pid=$(cat "$state/$name.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$state/$name.pid"
}

down() {
  [[ -d "$state" ]] || { say "no demo running"; return 0; }
  say "stopping the operator and the Twilio simulator"
  stop_pid operator
  stop_pid twilio-sim
  if [[ -f "$state/cp.env" ]]; then
    # shellcheck disable=SC1091
    source "$state/cp.env"
    say "stopping the control plane"
    hack/stop-control-plane.sh "$K8S_TESTENV_DIR" || true
  fi
  rm -rf "$state"
  say "demo stopped"
}

up() {
  if alive operator; then die "a demo is already running (make demo-stop first)"; fi
  rm -rf "$state"; mkdir -p "$state"
  say "starting a local Kubernetes control plane (etcd + kube-apiserver 1.20)"
  K8S_TESTENV_CONTROLLER_MANAGER=1 hack/start-control-plane.sh > "$state/cp.env"
  # shellcheck disable=SC1090
  source "$state/cp.env"
  export KUBECONFIG

  say "starting the Twilio simulator on http://$SIM_ADDR (strict: every request checked against Twilio's OpenAPI specs)"
  local specs; specs=$(hack/fetch-twilio-specs.sh)
  nohup target/debug/twilio-sim --listen "$SIM_ADDR" --seed hack/demo-seed.yaml --strict --spec-dir "$specs" \
    > "$state/twilio-sim.log" 2>&1 < /dev/null &
  echo $! > "$state/twilio-sim.pid"
  for _ in $(seq 1 100); do curl -fsS "http://$SIM_ADDR/_sim/health" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fsS "http://$SIM_ADDR/_sim/health" >/dev/null || die "the simulator did not start: $(tail -5 "$state/twilio-sim.log")"

  say "installing the CRDs"
  kubectl apply --server-side -f crds/ >/dev/null
  kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null

  say "starting the operator"
  nohup target/debug/whatsapp-operator run \
    --twilio-api-url "http://$SIM_ADDR" --twilio-messaging-url "http://$SIM_ADDR" \
    --verify-interval 2m --sender-poll-interval 1m \
    > "$state/operator.log" 2>&1 < /dev/null &
  echo $! > "$state/operator.pid"

  say "applying examples/ in namespace $NS"
  kubectl create namespace "$NS" >/dev/null
  kubectl apply -n "$NS" -f examples/ >/dev/null
  say "waiting for the good channels to be Ready"
  kubectl wait -n "$NS" --for=condition=Ready wac/sales wac/sandbox --timeout=90s >/dev/null \
    || { tail -20 "$state/operator.log" >&2; die "channels did not become Ready"; }
  kubectl wait -n "$NS" --for=condition=CredentialsValid=false wac/marketing --timeout=60s >/dev/null || true
  kubectl wait -n "$NS" --for=condition=NumberVerified=false wac/support --timeout=60s >/dev/null || true

  echo
  kubectl get wac -n "$NS"
  echo
  kubectl get whatsappnumberbindings
  echo
  for ch in sales sandbox support marketing; do
    printf '%s:\n' "$ch"
    kubectl get wac "$ch" -n "$NS" \
      -o jsonpath='{range .status.conditions[*]}{"  "}{.type}={.status} ({.reason}): {.message}{"\n"}{end}'
  done
  cat <<EOT

The demo is running. Look around:
  export KUBECONFIG=$KUBECONFIG
  kubectl get wac -n $NS                       # the channels (Number, Instance, Phase, Queue, Ready)
  kubectl describe wac sales -n $NS            # conditions and Events
  kubectl explain wac.spec                     # the API
  kubectl get whatsappnumberbindings           # who holds each number
  curl -s http://$SIM_ADDR/_sim/requests       # every Twilio call the operator made
  tail -f $state/operator.log
Fix the wrong token:
  kubectl -n $NS create secret generic twilio-wrong --from-literal=authToken=demo-prod-auth-token-0000000001 --dry-run=client -o yaml | kubectl apply -f -
Stop everything:
  make demo-stop
EOT
}

status() {
  for p in twilio-sim operator; do if alive "$p"; then echo "$p: running"; else echo "$p: stopped"; fi; done
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 up|down|status" ;;
esac
