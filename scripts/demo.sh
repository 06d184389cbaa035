#!/usr/bin/env bash
# The main job until `trellis demo` exists: build trellis, then validate and analyze the
# sample mesh shipped in samples/ — a clean one, and one with the mistakes that silently
# break traffic in Istio.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/trellis-target}"
cargo build --quiet -p trellis-cli || exit 1
trellis="$CARGO_TARGET_DIR/debug/trellis"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; echo "(exit $?)"; }

step "$trellis" validate -f samples/bookstore
step "$trellis" analyze samples/bookstore
step "$trellis" validate -f samples/mistakes
step "$trellis" analyze samples/bookstore samples/mistakes/broken-routing.yaml
step "$trellis" analyze -o json samples/bookstore samples/mistakes/broken-routing.yaml
exit 0
