#!/usr/bin/env bash
# fetch-twilio-specs.sh - fetch Twilio's official OpenAPI specs (twilio-oai) into a local cache.
#
# The specs ship in the npm package @twilio-alpha/mcp (MIT) under twilio-oai/spec/json/.
# `npm pack` downloads the tarball from the registry without running any of its code; the
# tarball is checked against a pinned SHA-256 before anything is extracted.
#
# Prints the spec directory on stdout. Idempotent: a verified cache is reused.
#   TWILIO_OAI_CACHE   cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/whatsapp-operator/twilio-oai)
set -euo pipefail

PKG="@twilio-alpha/mcp"
VERSION="0.7.0"
SHA256="7ff791d1023cad6372496d8aba1c49bc3ffbcf0989b9f96b3a83d2df9d6af755"
SPECS=(twilio_api_v2010.json twilio_messaging_v1.json twilio_messaging_v2.json twilio_conversations_v1.json
  twilio_content_v1.json twilio_accounts_v1.json twilio_monitor_v1.json)

CACHE="${TWILIO_OAI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/whatsapp-operator/twilio-oai}"
DEST="$CACHE/$VERSION"
log() { printf '[fetch-twilio-specs] %s\n' "$*" >&2; }

complete() { for f in "${SPECS[@]}"; do [[ -f "$DEST/json/$f" ]] || return 1; done; }
if [[ -f "$DEST/.verified" ]] && [[ "$(cat "$DEST/.verified")" == "$SHA256" ]] && complete; then
  echo "$DEST/json"; exit 0
fi
command -v npm >/dev/null || { log "npm is required (apt-get install npm)"; exit 1; }

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
log "npm pack $PKG@$VERSION"
(cd "$tmp" && npm pack --silent "$PKG@$VERSION" >/dev/null)
tgz=$(ls "$tmp"/*.tgz)
got=$(sha256sum "$tgz" | cut -d' ' -f1)
[[ "$got" == "$SHA256" ]] || { log "checksum mismatch: got $got, want $SHA256"; exit 1; }
tar -xzf "$tgz" -C "$tmp" package/twilio-oai/spec/json
# A verified cache that lacks a file the list gained is completed in place (each file renamed
# into place, so a reader never sees a partial one); anything else is rebuilt.
if ! [[ -f "$DEST/.verified" && "$(cat "$DEST/.verified")" == "$SHA256" ]]; then rm -rf "$DEST"; fi
mkdir -p "$DEST/json"
for f in "${SPECS[@]}"; do
  cp "$tmp/package/twilio-oai/spec/json/$f" "$DEST/json/.$f.tmp" && mv "$DEST/json/.$f.tmp" "$DEST/json/$f"
done
echo "$SHA256" > "$DEST/.verified"
log "specs in $DEST/json"
echo "$DEST/json"
