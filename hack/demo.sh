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
# The local webhook receiver (HTTPS, run by the simulator): checks X-Twilio-Signature, logs each
# inbound message, answers 200 (or what its path asks, e.g. /status/502).
RECEIVER_ADDR="${WAO_DEMO_RECEIVER_ADDR:-127.0.0.1:18981}"
PROD_ACCOUNT=AC5eed5eed5eed5eed5eed5eed5eed5eed
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
  say "  and the local webhook receiver on https://$RECEIVER_ADDR (checks X-Twilio-Signature)"
  local specs; specs=$(hack/fetch-twilio-specs.sh)
  nohup target/debug/twilio-sim --listen "$SIM_ADDR" --seed hack/demo-seed.yaml --strict --spec-dir "$specs" \
    --receiver-listen "$RECEIVER_ADDR" --webhook-timeout-ms 5000 \
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
    --verify-interval 2m --sender-poll-interval 1m --alerts-interval 3s --receiver-quiet-window 10m \
    > "$state/operator.log" 2>&1 < /dev/null &
  echo $! > "$state/operator.pid"

  say "applying examples/ in namespace $NS"
  kubectl create namespace "$NS" >/dev/null
  kubectl apply -n "$NS" -f examples/ >/dev/null
  # The good channel's receiver is the local one; a fifth channel's receiver answers 502.
  kubectl patch wac sales -n "$NS" --type merge \
    -p "{\"spec\":{\"webhook\":{\"url\":\"https://$RECEIVER_ADDR/api/webhook/LeadGen/whatsapp\"}}}" >/dev/null
  kubectl apply -n "$NS" -f - >/dev/null <<EOF_CHANNEL
apiVersion: whatsapp-operator.io/v1alpha1
kind: WhatsAppChannel
metadata:
  name: inbound-failing
spec:
  phoneNumber: "+14155550112"
  instance: crm-prod
  twilio:
    accountSid: $PROD_ACCOUNT
    credentialsSecretRef:
      name: twilio-prod
  webhook:
    url: https://$RECEIVER_ADDR/status/502
  queue: orders-chat
EOF_CHANNEL
  say "waiting for the good channels to be Ready"
  kubectl wait -n "$NS" --for=condition=Ready wac/sales wac/sandbox wac/inbound-failing --timeout=90s >/dev/null \
    || { tail -20 "$state/operator.log" >&2; die "channels did not become Ready"; }
  say "injecting an inbound WhatsApp message to sales and to inbound-failing at the simulator"
  for number in +14155550100 +14155550112; do
    curl -fsS -X POST "http://$SIM_ADDR/_sim/accounts/$PROD_ACCOUNT/inbound/$number" \
      -H 'Content-Type: application/json' \
      -d '{"from": "+14155550123", "body": "Hi, is my order on its way?", "profile_name": "Ada"}' \
      > "$state/inbound-${number#+}.json" || die "injecting an inbound message to $number failed"
  done
  kubectl wait -n "$NS" --for=condition=ReceiverHealthy=false wac/inbound-failing --timeout=60s >/dev/null \
    || { tail -20 "$state/operator.log" >&2; die "inbound-failing did not report its failing receiver"; }
  kubectl wait -n "$NS" --for=condition=CredentialsValid=false wac/marketing --timeout=60s >/dev/null || true
  kubectl wait -n "$NS" --for=condition=NumberVerified=false wac/support --timeout=60s >/dev/null || true

  echo
  kubectl get wac -n "$NS"
  echo
  kubectl get whatsappnumberbindings
  echo
  for ch in sales sandbox support marketing inbound-failing; do
    printf '%s:\n' "$ch"
    kubectl get wac "$ch" -n "$NS" \
      -o jsonpath='{range .status.conditions[*]}{"  "}{.type}={.status} ({.reason}): {.message}{"\n"}{end}'
  done
  echo
  echo "The local receiver (its log in $state/twilio-sim.log):"
  grep 'receiver got a webhook' "$state/twilio-sim.log" | sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/  /' || true
  echo "Twilio's alerts (Monitor API, GET /v1/Alerts):"
  curl -fsS -u "$PROD_ACCOUNT:demo-prod-auth-token-0000000001" "http://$SIM_ADDR/v1/Alerts" \
    | python3 -c 'import json,sys; [print("  %s %s %s %s" % (a["date_generated"], a["error_code"], a["request_url"], a["sid"])) for a in json.load(sys.stdin)["alerts"]]' \
    2>/dev/null || true
  cat <<EOT

The demo is running. Look around:
  export KUBECONFIG=$KUBECONFIG
  kubectl get wac -n $NS                       # the channels (Number, Instance, Phase, Queue, Ready)
  kubectl describe wac sales -n $NS            # conditions and Events
  kubectl explain wac.spec                     # the API
  kubectl get whatsappnumberbindings           # who holds each number
  curl -s http://$SIM_ADDR/_sim/requests       # every Twilio call the operator made
  kubectl get wac inbound-failing -n $NS -o jsonpath='{.status.conditions[?(@.type=="ReceiverHealthy")]}'
Send another inbound message (the receiver logs it; the 502 one becomes another 11200 alert):
  curl -s -X POST http://$SIM_ADDR/_sim/accounts/$PROD_ACCOUNT/inbound/+14155550112 -H 'Content-Type: application/json' -d '{"from": "+14155550123", "body": "hello"}'
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
