#!/usr/bin/env bash
# with-control-plane.sh CMD... - run CMD with KUBECONFIG pointing at a real API server.
#
# If WAO_USE_EXISTING_CLUSTER=1 and KUBECONFIG is set, CMD runs against that cluster. Otherwise
# this installs the local control plane if needed (cached), starts one instance on free ports,
# runs CMD with KUBECONFIG and K8S_TESTENV_DIR exported, and stops exactly that instance when CMD
# ends (whatever its exit status). The apiserver and etcd logs are kept in
# target/testenv-logs/ when CMD fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if [[ "${WAO_USE_EXISTING_CLUSTER:-0}" == 1 && -n "${KUBECONFIG:-}" ]]; then
  exec "$@"
fi

"$here/install-control-plane.sh" >&2
env_out=$(K8S_TESTENV_CONTROLLER_MANAGER="${K8S_TESTENV_CONTROLLER_MANAGER:-1}" "$here/start-control-plane.sh")
eval "$env_out"
export KUBECONFIG K8S_TESTENV_DIR
# shellcheck disable=SC1091
source "$K8S_TESTENV_DIR/env"

cleanup() {
  local rc=$?
  if [[ $rc -ne 0 && -d "$K8S_TESTENV_DIR" ]]; then
    mkdir -p target/testenv-logs
    cp "$K8S_TESTENV_DIR"/*.log target/testenv-logs/ 2>/dev/null || true
    echo "control-plane logs kept in target/testenv-logs/" >&2
  fi
  "$here/stop-control-plane.sh" "$K8S_TESTENV_DIR" >&2 || true
  exit $rc
}
trap cleanup EXIT INT TERM
"$@"
