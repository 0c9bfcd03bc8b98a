#!/bin/sh
# Installs kelp and starts a single-node server.
#
#   sudo ./install.sh                  build from this checkout (or use a
#                                      kelp binary next to this script) and start
#   curl -sfL URL | sudo sh -          the same, from a published binary
#
# Environment (k3s-style):
#   INSTALL_KELP_BIN=path      use this binary instead of building
#   INSTALL_KELP_EXEC="args"   extra flags for `kelp server`
#   INSTALL_KELP_SKIP_START=true   install only
#   KELP_DATA_DIR              data dir (default /var/lib/kelp)
set -eu

BIN_DIR=/usr/local/bin
UNIT=/etc/systemd/system/kelp.service
here=$(cd "$(dirname "$0")" 2>/dev/null && pwd || echo .)

info() { echo "[kelp] $*"; }
fatal() { echo "[kelp] error: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fatal "run as root: sudo ./install.sh"

# 1. A binary: given, prebuilt beside this script, or built from source.
if [ -n "${INSTALL_KELP_BIN:-}" ]; then
  src=$INSTALL_KELP_BIN
elif [ -x "$here/kelp" ]; then
  src=$here/kelp
elif [ -f "$here/Cargo.toml" ]; then
  command -v cargo >/dev/null 2>&1 || fatal "cargo not found; install Rust (https://rustup.rs) or set INSTALL_KELP_BIN"
  # Build dependencies: protoc for containerd-client's build script (it
  # brings its own well-known protos), a C compiler for ring and zstd.
  if ! command -v protoc >/dev/null 2>&1 || ! command -v cc >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 \
      || fatal "building needs protoc and a C compiler: install protobuf-compiler and gcc"
    info "installing build dependencies (protobuf-compiler gcc libc6-dev)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends protobuf-compiler gcc libc6-dev >/dev/null \
      || fatal "apt-get install protobuf-compiler gcc libc6-dev failed"
  fi
  info "building release binary (this takes a few minutes on a small machine)"
  (cd "$here" && cargo build --release --locked 2>&1 | tail -n 3) || fatal "cargo build failed"
  src=$here/target/release/kelp
else
  fatal "no kelp binary: set INSTALL_KELP_BIN or run from a source checkout"
fi
[ -x "$src" ] || fatal "$src is not an executable"
install -m 0755 "$src" "$BIN_DIR/kelp.new" && mv -f "$BIN_DIR/kelp.new" "$BIN_DIR/kelp"
info "installed $BIN_DIR/kelp ($("$BIN_DIR/kelp" version))"

# 2. The node runs pods on containerd and runc from the distribution
#    (kelp starts its own containerd on /run/kelp/containerd/containerd.sock).
if ! command -v containerd >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    info "installing containerd and runc"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends containerd runc iptables >/dev/null \
      || fatal "apt-get install containerd runc failed"
  else
    fatal "containerd and runc are needed: install them with your package manager, or set INSTALL_KELP_EXEC=--disable-agent"
  fi
fi

# 3. Host checks (warn only: the server reports what it cannot do).
"$BIN_DIR/kelp" check-config || info "warning: some host checks failed (see above)"

# 4. Service definition.
mkdir -p /etc/kelp
if [ -n "${INSTALL_KELP_EXEC:-}" ]; then
  echo "KELP_EXEC_ARGS=\"$INSTALL_KELP_EXEC\"" > /etc/default/kelp
fi
[ -n "${KELP_DATA_DIR:-}" ] && echo "KELP_DATA_DIR=$KELP_DATA_DIR" >> /etc/default/kelp
if [ -f "$here/packaging/kelp.service" ]; then
  cp "$here/packaging/kelp.service" "$UNIT.tmp"
else
  "$BIN_DIR/kelp" --help >/dev/null
  fatal "packaging/kelp.service not found next to install.sh"
fi

[ "${INSTALL_KELP_SKIP_START:-}" = true ] && { mv -f "$UNIT.tmp" "$UNIT"; info "installed; not starting (INSTALL_KELP_SKIP_START)"; exit 0; }

# 5. Start: systemd when it runs this machine, else a supervised background process.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  mv -f "$UNIT.tmp" "$UNIT"
  systemctl daemon-reload
  systemctl enable kelp >/dev/null 2>&1
  systemctl restart kelp
  info "started kelp.service (journalctl -u kelp -f)"
else
  rm -f "$UNIT.tmp"
  mkdir -p /run/kelp /var/log
  if [ -f /run/kelp/kelp.pid ] && kill -0 "$(cat /run/kelp/kelp.pid)" 2>/dev/null; then
    kill "$(cat /run/kelp/kelp.pid)"; sleep 2
  fi
  # shellcheck disable=SC2086
  nohup "$BIN_DIR/kelp" server ${INSTALL_KELP_EXEC:-} >>/var/log/kelp.log 2>&1 &
  echo $! > /run/kelp/kelp.pid
  info "no systemd here: started kelp server as pid $(cat /run/kelp/kelp.pid), log /var/log/kelp.log"
fi

# 6. Wait for it to come up (the API answers /readyz once it exists).
i=0
while [ $i -lt 30 ]; do
  if [ -f /etc/kelp/kelp.yaml ] && "$BIN_DIR/kelp" version >/dev/null 2>&1; then
    info "admin kubeconfig: /etc/kelp/kelp.yaml (export KUBECONFIG=/etc/kelp/kelp.yaml)"
    exit 0
  fi
  i=$((i + 1)); sleep 1
done
fatal "server did not write /etc/kelp/kelp.yaml within 30 s; see journalctl -u kelp or /var/log/kelp.log"
