#!/bin/sh
# Installs kelp and starts it: a single-node server, or an agent that joins
# one. Usable from a checkout, from an airgap bundle, and piped:
#
#   sudo ./install.sh                               build here (or use ./kelp) and start a server
#   curl -sfL URL | sh -                            download a release and start a server
#   curl -sfL URL | KELP_URL=https://S:6443 KELP_TOKEN=T sh -    join S as an agent
#   curl -sfL URL | sh -s - server --disable servicelb           flags for kelp
#
# Environment, as k3s's installer with KELP names:
#   INSTALL_KELP_SKIP_DOWNLOAD=true  use the kelp already in the bin dir (airgap)
#   INSTALL_KELP_VERSION=vX.Y.Z      release to download (default: the latest)
#   INSTALL_KELP_RELEASE_URL=URL     where releases live (default: GitHub's)
#   INSTALL_KELP_BIN=PATH            install this binary
#   INSTALL_KELP_BIN_DIR=DIR         where kelp and its scripts go (/usr/local/bin)
#   INSTALL_KELP_SYSTEMD_DIR=DIR     where the unit goes (/etc/systemd/system)
#   INSTALL_KELP_EXEC="server …"     command and flags (arguments win over it)
#   INSTALL_KELP_SKIP_ENABLE=true    do not enable the service at boot
#   INSTALL_KELP_SKIP_START=true     do not (re)start it
#   INSTALL_KELP_FORCE_RESTART=true  restart even if nothing changed
#   INSTALL_KELP_RENDER=DIR          only write the default server's unit,
#                                    OpenRC script and helper scripts to DIR
#   KELP_URL, KELP_TOKEN, KELP_TOKEN_FILE   join a server (KELP_URL: https)
#   KELP_* (e.g. KELP_DATA_DIR, KELP_NODE_NAME)   kept in the service's env file
#
# Running it again upgrades in place and restarts kelp only if the binary,
# its flags or its environment changed.
set -eu

BIN_DIR=${INSTALL_KELP_BIN_DIR:-/usr/local/bin}
SYSTEMD_DIR=${INSTALL_KELP_SYSTEMD_DIR:-/etc/systemd/system}
RELEASE_URL=${INSTALL_KELP_RELEASE_URL:-https://github.com/kelp-k8s/kelp/releases}
CONFIG_DIR=/etc/kelp
here=$(cd "$(dirname "$0")" 2>/dev/null && pwd || echo .)

info() { echo "[kelp] $*"; }
fatal() { echo "[kelp] error: $*" >&2; exit 1; }

# quote ARG: ARG as one single-quoted word for sh, systemd and OpenRC.
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

# --- what to run -------------------------------------------------------------
# Arguments win over INSTALL_KELP_EXEC; with neither, a server, or an agent
# when KELP_URL is set (k3s's rule). Flags alone mean the default command.
if [ $# -eq 0 ] && [ -n "${INSTALL_KELP_EXEC:-}" ]; then
  set -f # split into words, but never expand a glob in a flag
  # shellcheck disable=SC2086
  set -- $INSTALL_KELP_EXEC
  set +f
fi
case "${1:-}" in
  server | agent) COMMAND=$1; shift ;;
  *) if [ -n "${KELP_URL:-}" ]; then COMMAND=agent; else COMMAND=server; fi ;;
esac
if [ -n "${KELP_URL:-}" ]; then
  case "$KELP_URL" in
    https://*) ;;
    *) fatal "KELP_URL must be the server's https URL (https://HOST:6443), got '$KELP_URL'" ;;
  esac
  if [ -z "${KELP_TOKEN:-}" ] && [ -z "${KELP_TOKEN_FILE:-}" ]; then
    fatal "KELP_URL is set but KELP_TOKEN is not: copy the token from the server's /var/lib/kelp/server/token"
  fi
fi
# One pass over the flags: what the installer itself needs to know.
JOIN=${KELP_URL:-}
DATA_DIR=${KELP_DATA_DIR:-/var/lib/kelp}
NODE=true
EXEC_LINE=$COMMAND
prev=
for a in "$@"; do
  case "$prev" in
    --server | -s) JOIN=$a ;;
    --data-dir | -d) DATA_DIR=$a ;;
  esac
  case "$a" in
    --server=*) JOIN=${a#--server=} ;;
    --data-dir=*) DATA_DIR=${a#--data-dir=} ;;
    --disable-agent | --disable-agent=true) NODE=false ;;
  esac
  EXEC_LINE="$EXEC_LINE $(quote "$a")"
  prev=$a
done
[ "$COMMAND" = server ] || [ -n "$JOIN" ] \
  || fatal "an agent needs KELP_URL=https://SERVER:6443 (or --server) and KELP_TOKEN"
if [ "$COMMAND" = agent ]; then SERVICE=kelp-agent; UNINSTALL=kelp-agent-uninstall.sh; else SERVICE=kelp; UNINSTALL=kelp-uninstall.sh; fi

ENV_FILE=$CONFIG_DIR/$SERVICE.env
LOG_FILE=/var/log/$SERVICE.log
PID_FILE=/run/$SERVICE.pid

# --- service files ---------------------------------------------------------
render_systemd() {
  cat <<EOF
[Unit]
Description=kelp - a whole Kubernetes distribution in one binary ($COMMAND)
Documentation=https://github.com/kelp-k8s/kelp
Wants=network-online.target
After=network-online.target

[Install]
WantedBy=multi-user.target

[Service]
# kelp tells systemd when it serves (sd_notify READY=1).
Type=notify
EnvironmentFile=-$ENV_FILE
# Stopping kelp leaves containerd and the pods running (upgrades keep
# workloads up); $BIN_DIR/kelp-killall.sh stops everything.
KillMode=process
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s
ExecStartPre=-/sbin/modprobe br_netfilter
ExecStartPre=-/sbin/modprobe overlay
ExecStart=$BIN_DIR/kelp $EXEC_LINE
EOF
}

render_openrc() {
  cat <<EOF
#!/sbin/openrc-run
# kelp ($COMMAND), supervised by OpenRC.

depend() {
  after network-online
  want cgroups
}

start_pre() {
  modprobe br_netfilter 2>/dev/null || true
  modprobe overlay 2>/dev/null || true
}

supervisor=supervise-daemon
name=$SERVICE
command="$BIN_DIR/kelp"
command_args="$EXEC_LINE"
output_log=$LOG_FILE
error_log=$LOG_FILE
pidfile=$PID_FILE
respawn_delay=5
respawn_max=0

set -o allexport
if [ -f $ENV_FILE ]; then . $ENV_FILE; fi
set +o allexport
EOF
}

# With no init system (a container): a launcher the installer starts in the
# background, and the user can start again after kelp-killall.sh.
render_launcher() {
  cat <<EOF
#!/bin/sh
# Starts kelp ($COMMAND) in the background, logging to $LOG_FILE.
# Stop it, and everything it started, with $BIN_DIR/kelp-killall.sh.
set -eu
if [ -f $PID_FILE ] && kill -0 "\$(cat $PID_FILE)" 2>/dev/null; then
  echo "kelp is already running as pid \$(cat $PID_FILE)"; exit 0
fi
mkdir -p "\$(dirname $LOG_FILE)"
set -a
[ ! -f $ENV_FILE ] || . $ENV_FILE
set +a
# setsid: kelp must outlive the shell and terminal that started it.
setsid $BIN_DIR/kelp $EXEC_LINE >>$LOG_FILE 2>&1 </dev/null &
echo \$! > $PID_FILE
echo "started kelp $COMMAND as pid \$!; log: $LOG_FILE; stop: $BIN_DIR/kelp-killall.sh"
EOF
}

render_killall() {
  cat <<EOF
#!/bin/sh
# Stops kelp and everything it started on this machine: the service,
# containerd, shims and containers, pods' mounts, cgroups and namespaces,
# kelp's links, routes and nftables table. The data stays; start again with
# the service (or the installer).
[ "\$(id -u)" -eq 0 ] || exec sudo "\$0" "\$@"
for s in kelp kelp-agent; do
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl stop "\$s" 2>/dev/null || true
  elif command -v rc-service >/dev/null 2>&1 && [ -f /etc/init.d/\$s ]; then
    rc-service "\$s" stop 2>/dev/null || true
  fi
  if [ -f /run/\$s.pid ]; then
    kill "\$(cat /run/\$s.pid)" 2>/dev/null || true
    rm -f /run/\$s.pid
  fi
done
$BIN_DIR/kelp reset --data-dir $(quote "$DATA_DIR")
EOF
}

render_uninstall() {
  cat <<EOF
#!/bin/sh
# Removes kelp from this machine: stops everything (kelp-killall.sh), then
# deletes the service, the data (the cluster's store, certificates and
# images), configuration, logs and kelp's binaries and scripts.
set -u
[ "\$(id -u)" -eq 0 ] || exec sudo "\$0" "\$@"
$BIN_DIR/kelp-killall.sh
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl disable $SERVICE 2>/dev/null || true
  rm -f $SYSTEMD_DIR/$SERVICE.service
  systemctl daemon-reload
  systemctl reset-failed $SERVICE 2>/dev/null || true
fi
if [ -f /etc/init.d/$SERVICE ]; then
  rc-update delete $SERVICE default 2>/dev/null || true
  rm -f /etc/init.d/$SERVICE
fi
$BIN_DIR/kelp reset --remove-data --data-dir $(quote "$DATA_DIR")
rm -rf $CONFIG_DIR
rm -f $LOG_FILE $PID_FILE
# The kubectl link the installer made, and only that.
if [ -L $BIN_DIR/kubectl ] && [ "\$(readlink $BIN_DIR/kubectl)" = kelp ]; then rm -f $BIN_DIR/kubectl; fi
rm -f $BIN_DIR/$SERVICE-start.sh $BIN_DIR/kelp-killall.sh $BIN_DIR/kelp
rmdir /var/log/pods 2>/dev/null || true
rm -f "\$0"
echo "kelp is uninstalled"
EOF
}

if [ -n "${INSTALL_KELP_RENDER:-}" ]; then
  mkdir -p "$INSTALL_KELP_RENDER"
  render_systemd > "$INSTALL_KELP_RENDER/$SERVICE.service"
  render_openrc > "$INSTALL_KELP_RENDER/$SERVICE.openrc"
  render_killall > "$INSTALL_KELP_RENDER/kelp-killall.sh"
  render_uninstall > "$INSTALL_KELP_RENDER/$UNINSTALL"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || fatal "run as root: sudo ./install.sh"

# --- the binary ----------------------------------------------------------
case "$(uname -m)" in
  x86_64 | amd64) ARCH=amd64 ;;
  aarch64 | arm64) ARCH=arm64 ;;
  *) fatal "no kelp build for $(uname -m): build from source with cargo" ;;
esac

# verify FILE SUMS: FILE's sha256 must be SUMS's line for kelp-$ARCH.
verify() {
  expected=$(awk -v n="kelp-$ARCH" '$2 == n || $2 == "*" n { print $1 }' "$2")
  [ -n "$expected" ] || fatal "$2 has no sha256 for kelp-$ARCH"
  actual=$(sha256sum "$1" | awk '{ print $1 }')
  [ "$expected" = "$actual" ] \
    || fatal "sha256 mismatch for kelp-$ARCH: expected $expected, got $actual; the file is corrupt or not the release; nothing was installed"
  info "sha256 verified ($actual)"
}

download() { # URL DEST
  if command -v curl >/dev/null 2>&1; then
    curl -sfL --retry 2 -o "$2" "$1" || fatal "download failed: $1"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O "$2" "$1" || fatal "download failed: $1"
  else
    fatal "downloading needs curl or wget"
  fi
}

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

if [ "${INSTALL_KELP_SKIP_DOWNLOAD:-}" = true ]; then
  [ -x "$BIN_DIR/kelp" ] \
    || fatal "INSTALL_KELP_SKIP_DOWNLOAD is set but $BIN_DIR/kelp is missing: copy the kelp binary there first"
  [ ! -f "$here/sha256sum-$ARCH.txt" ] || verify "$BIN_DIR/kelp" "$here/sha256sum-$ARCH.txt"
  src=
elif [ -n "${INSTALL_KELP_BIN:-}" ]; then
  src=$INSTALL_KELP_BIN
elif [ -f "$here/kelp" ] && [ -z "${INSTALL_KELP_VERSION:-}" ]; then
  src=$here/kelp  # an unpacked bundle
  [ ! -f "$here/sha256sum-$ARCH.txt" ] || verify "$src" "$here/sha256sum-$ARCH.txt"
elif [ -f "$here/Cargo.toml" ] && [ -z "${INSTALL_KELP_VERSION:-}" ]; then
  command -v cargo >/dev/null 2>&1 || fatal "cargo not found; install Rust (https://rustup.rs), or set INSTALL_KELP_VERSION to download a release"
  # protoc for containerd-client's build script, a C compiler for ring and zstd.
  if ! command -v protoc >/dev/null 2>&1 || ! command -v cc >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 \
      || fatal "building needs protoc and a C compiler: install protobuf-compiler and gcc"
    info "installing build dependencies (protobuf-compiler libprotobuf-dev gcc libc6-dev)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends protobuf-compiler libprotobuf-dev gcc libc6-dev >/dev/null \
      || fatal "apt-get install protobuf-compiler libprotobuf-dev gcc libc6-dev failed"
  fi
  info "building the release binary (a few minutes on a small machine)"
  (cd "$here" && cargo build --release --locked 2>&1 | tail -n 3) || fatal "cargo build failed"
  src=$here/target/release/kelp
else
  if [ -n "${INSTALL_KELP_VERSION:-}" ]; then
    base=$RELEASE_URL/download/$INSTALL_KELP_VERSION
  else
    base=$RELEASE_URL/latest/download
  fi
  info "downloading kelp-$ARCH from $base"
  download "$base/sha256sum-$ARCH.txt" "$TMP/sums"
  download "$base/kelp-$ARCH" "$TMP/kelp"
  verify "$TMP/kelp" "$TMP/sums"
  src=$TMP/kelp
fi

BINARY_CHANGED=false
if [ -n "$src" ]; then
  [ -f "$src" ] || fatal "$src does not exist"
  mkdir -p "$BIN_DIR"
  if ! cmp -s "$src" "$BIN_DIR/kelp"; then
    install -m 0755 "$src" "$BIN_DIR/kelp.new" && mv -f "$BIN_DIR/kelp.new" "$BIN_DIR/kelp"
    BINARY_CHANGED=true
  fi
fi
"$BIN_DIR/kelp" version >/dev/null 2>&1 || fatal "$BIN_DIR/kelp does not run on this machine"
info "kelp: $("$BIN_DIR/kelp" version) at $BIN_DIR/kelp"

# --- runtime dependencies (a node runs pods on containerd and runc) ------------
if [ "$NODE" = true ]; then
  missing=
  for b in containerd runc iptables; do command -v $b >/dev/null 2>&1 || missing="$missing $b"; done
  if [ -n "$missing" ]; then
    info "installing$missing"
    if command -v apt-get >/dev/null 2>&1; then
      DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends$missing >/dev/null
    elif command -v dnf >/dev/null 2>&1; then
      dnf install -y -q$missing
    elif command -v apk >/dev/null 2>&1; then
      apk add --no-cache$missing
    else
      false
    fi || fatal "a node needs$missing: install them with your package manager (or run 'server --disable-agent')"
  fi
fi

# Preflight: a report, not a gate (a server without some optional feature
# still serves; the log says what it cannot do).
if "$BIN_DIR/kelp" check-config --data-dir "$DATA_DIR" > "$TMP/check" 2>&1; then
  sed 's/^/[kelp]   /' "$TMP/check"
else
  sed 's/^/[kelp]   /' "$TMP/check"
  info "warning: some host checks failed (see FAIL above)"
fi

# --- files -------------------------------------------------------------------
CONFIG_CHANGED=false
# put RENDER FILE MODE: RENDER's output becomes FILE unless FILE already
# holds exactly that (an unchanged file is not touched, and is no reason to
# restart). Not in a pipeline: it sets CONFIG_CHANGED in this shell.
put() {
  "$1" > "$TMP/put"
  if ! cmp -s "$TMP/put" "$2"; then
    mkdir -p "$(dirname "$2")"
    install -m "$3" "$TMP/put" "$2.new" && mv -f "$2.new" "$2"
    CONFIG_CHANGED=true
  fi
}

# The environment kelp runs with: KELP_* (the token among them) and proxies,
# sorted so that an unchanged environment is an unchanged file.
render_env() {
  # The binary's digest: a new binary is a changed file, so the service restarts.
  echo "# kelp $(sha256sum "$BIN_DIR/kelp" | awk '{ print $1 }')"
  env | grep -E '^(KELP_[A-Z_]+|HTTPS?_PROXY|NO_PROXY|https?_proxy|no_proxy)=' | sort | while IFS= read -r kv; do
    echo "${kv%%=*}=$(quote "${kv#*=}")"
  done
}
put render_env "$ENV_FILE" 0600
put render_killall "$BIN_DIR/kelp-killall.sh" 0755
put render_uninstall "$BIN_DIR/$UNINSTALL" 0755
if ! command -v kubectl >/dev/null 2>&1 && [ ! -e "$BIN_DIR/kubectl" ]; then
  ln -s kelp "$BIN_DIR/kubectl"
  info "linked $BIN_DIR/kubectl to kelp (it runs a real kubectl once one is installed)"
fi

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  INIT=systemd
  put render_systemd "$SYSTEMD_DIR/$SERVICE.service" 0644
  [ "$CONFIG_CHANGED" = false ] || systemctl daemon-reload
  [ "${INSTALL_KELP_SKIP_ENABLE:-}" = true ] || systemctl enable "$SERVICE" >/dev/null 2>&1
elif command -v openrc-run >/dev/null 2>&1 || [ -x /sbin/openrc-run ]; then
  INIT=openrc
  put render_openrc "/etc/init.d/$SERVICE" 0755
  [ "${INSTALL_KELP_SKIP_ENABLE:-}" = true ] || rc-update add "$SERVICE" default >/dev/null
else
  INIT=none
  put render_launcher "$BIN_DIR/$SERVICE-start.sh" 0755
fi

# --- start -------------------------------------------------------------------
if [ "${INSTALL_KELP_SKIP_START:-}" = true ]; then
  info "installed; not starting (INSTALL_KELP_SKIP_START)"
  exit 0
fi

running() {
  case $INIT in
    systemd) systemctl is-active --quiet "$SERVICE" ;;
    openrc) rc-service "$SERVICE" status >/dev/null 2>&1 ;;
    none) [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null ;;
  esac
}

if running && [ "$BINARY_CHANGED" = false ] && [ "$CONFIG_CHANGED" = false ] \
  && [ "${INSTALL_KELP_FORCE_RESTART:-}" != true ]; then
  info "no change: $SERVICE is running"
  exit 0
fi

case $INIT in
  systemd)
    info "starting $SERVICE.service (journalctl -u $SERVICE -f)"
    systemctl restart "$SERVICE" # Type=notify: returns once kelp is ready
    ;;
  openrc)
    info "starting $SERVICE (log: $LOG_FILE)"
    rc-service "$SERVICE" restart
    ;;
  none)
    if running; then
      pid=$(cat "$PID_FILE")
      info "stopping $SERVICE (pid $pid) to restart it"
      kill "$pid"
      i=0
      while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$PID_FILE"
    fi
    mkdir -p "$(dirname "$LOG_FILE")" && touch "$LOG_FILE"
    start=$(wc -l < "$LOG_FILE")
    info "no init system: $("$BIN_DIR/$SERVICE-start.sh")"
    # Wait for "kelp server/agent is ready" in the log, or the process's end.
    i=0
    until tail -n +"$((start + 1))" "$LOG_FILE" | grep -q "kelp $COMMAND is ready"; do
      if ! running; then
        tail -n 20 "$LOG_FILE" >&2
        fatal "kelp $COMMAND exited; the log above is the end of $LOG_FILE"
      fi
      [ $i -lt 600 ] || fatal "kelp $COMMAND not ready after 60 s; see $LOG_FILE"
      i=$((i + 1))
      sleep 0.1
    done
    ;;
esac
if [ "$COMMAND" = server ]; then
  info "ready: export KUBECONFIG=$CONFIG_DIR/kelp.yaml; join agents with KELP_URL=https://<this host>:6443 KELP_TOKEN=\$(cat $DATA_DIR/server/token)"
else
  info "ready: this node joined $JOIN"
fi
info "stop everything: $BIN_DIR/kelp-killall.sh; remove kelp: $BIN_DIR/$UNINSTALL"
