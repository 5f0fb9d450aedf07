#!/usr/bin/env bash
# build-image.sh - build the operator's OCI image without Docker: a static (crt-static) release
# binary in an image FROM scratch, written as an OCI archive by buildah (vfs driver, no daemon).
#
# The image holds only:
#   /whatsapp-operator                  the static-pie binary (root-owned, 0755)
#   /etc/ssl/certs/ca-certificates.crt  Debian's CA bundle: reqwest/kube use rustls with the
#                                       platform verifier, which reads the system roots (via
#                                       SSL_CERT_FILE, set in the image) to reach Twilio
# and runs as USER 65532:65532 with ENTRYPOINT ["/whatsapp-operator"], CMD ["run"].
#
# Idempotent: cargo rebuilds only what changed; buildah's storage is a throwaway directory.
# Installs buildah and skopeo with apt-get when they are missing (root needed for that only).
#
# Environment knobs (the Makefile passes the first three):
#   IMAGE_NAME     default ghcr.io/whatsapp-operator/whatsapp-operator
#   IMAGE_TAG      default the [package] version in Cargo.toml
#   IMAGE_ARCHIVE  default target/image/whatsapp-operator.oci.tar
#   IMAGE_SOURCE   org.opencontainers.image.source (default https://github.com/whatsapp-operator/whatsapp-operator)
#   CARGO_TARGET_DIR  honoured for the cargo build (default target/)
#
# Exit status 3 means "buildah cannot run on this machine" (not root and no user namespaces,
# or buildah missing and not installable); hack/test-image.sh turns that into a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

T0=$(date +%s)
log() { printf '[build-image %3ss] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }
die() { printf '[build-image] ERROR: %s\n' "$*" >&2; exit 1; }
cannot() { printf '[build-image] CANNOT BUILD HERE: %s\n' "$*" >&2; exit 3; }

RUST_TARGET=x86_64-unknown-linux-gnu
ARCH=amd64
BIN_NAME=whatsapp-operator
CARGO=${CARGO:-cargo}

cargo_version() {
  # The version of [package] (not of a dependency), as clap's --version prints it.
  awk '/^\[/{p = ($0 == "[package]")} p && /^version *=/{gsub(/.*= *"|".*/, ""); print; exit}' Cargo.toml
}
VERSION=$(cargo_version)
[[ -n "$VERSION" ]] || die "no [package] version in Cargo.toml"
IMAGE_NAME=${IMAGE_NAME:-ghcr.io/whatsapp-operator/whatsapp-operator}
IMAGE_TAG=${IMAGE_TAG:-$VERSION}
IMAGE_ARCHIVE=${IMAGE_ARCHIVE:-target/image/whatsapp-operator.oci.tar}
IMAGE_SOURCE=${IMAGE_SOURCE:-https://github.com/whatsapp-operator/whatsapp-operator}
[[ "$IMAGE_ARCHIVE" = /* ]] || IMAGE_ARCHIVE="$ROOT/$IMAGE_ARCHIVE"
[[ "$IMAGE_ARCHIVE" != *:* ]] || die "IMAGE_ARCHIVE must not contain ':' ($IMAGE_ARCHIVE)"
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

# --- tools -------------------------------------------------------------------------------------
need=()
command -v buildah >/dev/null || need+=(buildah)
command -v skopeo >/dev/null || need+=(skopeo)
[[ -s "$CA_BUNDLE" ]] || need+=(ca-certificates)
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    cannot "missing ${need[*]} and cannot apt-get install as $(id -un)"
  fi
  log "apt-get install ${need[*]}"
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi

# buildah gets its own storage (vfs: plain directories, no overlay/fuse), thrown away at the end.
WORK=$(dirname "$IMAGE_ARCHIVE")
mkdir -p "$WORK"
for stale in "$WORK"/buildah.*; do  # left by an interrupted run
  [[ -d "$stale" ]] || continue
  if [[ $(id -u) -ne 0 ]]; then buildah unshare rm -rf "$stale" 2>/dev/null || true; fi
  rm -rf "$stale"
done
STORE=$(mktemp -d "$WORK/buildah.XXXXXX")
bah() { buildah --storage-driver vfs --root "$STORE/root" --runroot "$STORE/run" "$@"; }
CTR=
cleanup() {
  if [[ -n "$CTR" ]]; then bah rm "$CTR" >/dev/null 2>&1 || true; fi
  # Rootless vfs layers belong to sub-UIDs: remove them from inside buildah's user namespace.
  if [[ $(id -u) -ne 0 ]]; then buildah unshare rm -rf "$STORE" 2>/dev/null || true; fi
  rm -rf "$STORE"
}
trap cleanup EXIT

# Probe before the slow build: can buildah make a container here at all?
if ! probe=$(bah from --name "probe-$$" scratch 2>&1); then
  cannot "buildah cannot run as $(id -un) (rootless needs user namespaces and /etc/subuid): $probe"
fi
bah rm "probe-$$" >/dev/null

# --- the static binary -------------------------------------------------------------------------
log "cargo build --release --target $RUST_TARGET (crt-static)"
# --target keeps RUSTFLAGS away from build scripts and proc-macros. getrandom 0.3 finds glibc's
# getrandom() with dlsym, which a static binary cannot do: it would fall back to reading
# /dev/urandom; the linux_getrandom backend calls the (statically linked) getrandom() instead.
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static --cfg getrandom_backend=\"linux_getrandom\"" \
  "$CARGO" build --release --locked --target "$RUST_TARGET" --bin "$BIN_NAME" >&2
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$RUST_TARGET/release/$BIN_NAME"
[[ -x "$BIN" ]] || die "no binary at $BIN"
if readelf -lW "$BIN" | grep -q 'program interpreter'; then
  die "$BIN is dynamically linked (needs an ELF interpreter); a scratch image cannot run it"
fi
[[ "$("$BIN" --version)" == "$BIN_NAME $VERSION" ]] || die "$BIN --version is not '$BIN_NAME $VERSION'"

# The rootfs is staged with fixed modes; the binary is stripped of symbols (the release profile
# keeps them), which roughly halves the image.
STAGE="$STORE/rootfs"
install -D -m 0755 "$BIN" "$STAGE/$BIN_NAME"
strip --strip-all "$STAGE/$BIN_NAME"
install -D -m 0644 "$CA_BUNDLE" "$STAGE/etc/ssl/certs/ca-certificates.crt"

# --- labels --------------------------------------------------------------------------------------
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [[ "$REVISION" != unknown ]] && [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
  log "the worktree has uncommitted changes: revision label $REVISION-dirty"
  REVISION="$REVISION-dirty"
fi
# Timestamps come from the commit, so the same commit gives the same image config.
EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
CREATED=$(date -u -d "@$EPOCH" +%Y-%m-%dT%H:%M:%SZ)
labels=(
  "org.opencontainers.image.title=$BIN_NAME"
  "org.opencontainers.image.description=Kubernetes operator for WhatsApp messaging channels backed by Twilio"
  "org.opencontainers.image.version=$VERSION"
  "org.opencontainers.image.revision=$REVISION"
  "org.opencontainers.image.source=$IMAGE_SOURCE"
  "org.opencontainers.image.licenses=Apache-2.0"
  "org.opencontainers.image.created=$CREATED"
)
label_args=()
annotation_args=()
for l in "${labels[@]}"; do label_args+=(--label "$l"); annotation_args+=(--annotation "$l"); done

# --- the image -----------------------------------------------------------------------------------
log "buildah from scratch ($IMAGE_NAME:$IMAGE_TAG)"
CTR=$(bah from --name "whatsapp-operator-build-$$" scratch)
bah copy --chown 0:0 "$CTR" "$STAGE/$BIN_NAME" "/$BIN_NAME" >/dev/null
bah copy --chown 0:0 "$CTR" "$STAGE/etc/ssl/certs/ca-certificates.crt" /etc/ssl/certs/ca-certificates.crt >/dev/null
bah config \
  --os linux --arch "$ARCH" \
  --user 65532:65532 \
  --workingdir / \
  --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --entrypoint "[\"/$BIN_NAME\"]" \
  --cmd '["run"]' \
  --created-by "hack/build-image.sh" \
  "${label_args[@]}" "${annotation_args[@]}" \
  "$CTR"

TMP_ARCHIVE="$IMAGE_ARCHIVE.tmp"
rm -f "$TMP_ARCHIVE"
log "buildah commit -> oci-archive:$IMAGE_ARCHIVE"
bah commit --quiet --format oci --timestamp "$EPOCH" --disable-compression=false --identity-label=false --rm \
  "$CTR" "oci-archive:$TMP_ARCHIVE:$IMAGE_NAME:$IMAGE_TAG" >/dev/null
CTR=
mv -f "$TMP_ARCHIVE" "$IMAGE_ARCHIVE"

size=$(du -h "$IMAGE_ARCHIVE" | cut -f1)
digest=$(skopeo inspect --format '{{.Digest}}' "oci-archive:$IMAGE_ARCHIVE")
log "built $IMAGE_NAME:$IMAGE_TAG ($size, $digest) in $(($(date +%s) - T0))s"
echo "$IMAGE_ARCHIVE"
