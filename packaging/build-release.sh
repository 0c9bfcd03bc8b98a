#!/bin/sh
# Builds kelp's release artifacts into an output directory (default dist/):
#
#   kelp-<arch>                 the binary: glibc, statically linked (crt-static), stripped
#   sha256sum-<arch>.txt        its checksum, in sha256sum's format (install.sh verifies it)
#   kelp-airgap-<arch>.tar.zst  the airgap bundle: the binary, install.sh, the sums,
#                               the service files, and images/ for <data>/agent/images
#   kelp.service, kelp-agent.service, kelp.openrc, kelp-agent.openrc
#
# Usage: packaging/build-release.sh [--binary PATH] [--arch amd64|arm64]
#                                   [--image ARCHIVE]... [--out DIR]
#
#   --binary PATH   package this binary instead of building one
#   --arch ARCH     the target (default: this machine's). arm64 from an x86_64
#                   host needs `rustup target add aarch64-unknown-linux-gnu` and
#                   `apt-get install gcc-aarch64-linux-gnu`; this script then
#                   sets the linker.
#   --image FILE    an image archive (docker save / OCI layout tar) to ship in
#                   the bundle; kelp itself needs none (no pause image, DNS
#                   and the proxy are built in), so by default images/ is empty.
#
# Needs: cargo (unless --binary), tar with zstd (apt-get install zstd), sha256sum.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
out=$here/dist
binary=
images=
case "$(uname -m)" in aarch64 | arm64) arch=arm64 ;; *) arch=amd64 ;; esac

die() { echo "build-release: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --arch) arch=${2:?--arch needs amd64 or arm64}; shift 2 ;;
    --image) [ -f "${2:-}" ] || die "--image ${2:-}: no such file"; images="$images $2"; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    *) die "unknown argument $1 (see the header of $0)" ;;
  esac
done
case "$arch" in
  amd64) target=x86_64-unknown-linux-gnu ;;
  arm64) target=aarch64-unknown-linux-gnu ;;
  *) die "--arch $arch: only amd64 and arm64 are built" ;;
esac
command -v zstd >/dev/null 2>&1 || die "zstd is needed for the bundle: apt-get install zstd"

if [ -z "$binary" ]; then
  # crt-static links glibc in: the binary runs on any glibc-era distribution
  # without the build host's libraries. (musl would do too, but its
  # allocator is several times slower under kelp's load.)
  if [ "$target" = aarch64-unknown-linux-gnu ] && [ "$(uname -m)" != aarch64 ]; then
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
  fi
  (cd "$here" && RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target "$target")
  binary=$here/target/$target/release/kelp
fi
[ -x "$binary" ] || die "$binary is not an executable"

mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp "$binary" "$out/kelp-$arch"
strip "$out/kelp-$arch" 2>/dev/null || true
(cd "$out" && sha256sum "kelp-$arch" > "sha256sum-$arch.txt")

# The service files, rendered by install.sh itself so that they never drift.
INSTALL_KELP_RENDER=$stage/server sh "$here/install.sh"
KELP_URL=https://SERVER:6443 KELP_TOKEN=TOKEN INSTALL_KELP_RENDER=$stage/agent sh "$here/install.sh"
cp "$stage/server/kelp.service" "$stage/server/kelp.openrc" "$stage/agent/kelp-agent.service" "$stage/agent/kelp-agent.openrc" "$out/"

bundle=$stage/kelp-airgap-$arch
mkdir -p "$bundle/images" "$bundle/packaging"
cp "$out/kelp-$arch" "$bundle/kelp"
cp "$out/sha256sum-$arch.txt" "$here/install.sh" "$bundle/"
cp "$out"/kelp*.service "$out"/kelp*.openrc "$bundle/packaging/"
for image in $images; do cp "$image" "$bundle/images/"; done
cat > "$bundle/README" <<README
kelp airgap bundle ($arch). On a machine with no network at all:

  tar --zstd -xf kelp-airgap-$arch.tar.zst && cd kelp-airgap-$arch
  sudo install -m 0755 kelp /usr/local/bin/kelp
  sudo mkdir -p /var/lib/kelp/agent/images && sudo cp images/* /var/lib/kelp/agent/images/
  sudo INSTALL_KELP_SKIP_DOWNLOAD=true ./install.sh            # a server
  sudo INSTALL_KELP_SKIP_DOWNLOAD=true KELP_URL=https://SERVER:6443 KELP_TOKEN=... ./install.sh   # an agent

install.sh checks /usr/local/bin/kelp against sha256sum-$arch.txt.
containerd and runc must already be installed (Debian: containerd runc iptables).
README
tar --zstd -C "$stage" -cf "$out/kelp-airgap-$arch.tar.zst" "kelp-airgap-$arch"
ls -l "$out"
