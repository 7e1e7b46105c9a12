#!/usr/bin/env bash
# Sets up what peerfind's tests need and runs all of them: formatting, lints, unit tests,
# the loopback integration tests, the interop tests with js-, py- and rust-libp2p peers, the
# NAT lab tests (network namespaces; needs root), the container tests (the root
# Dockerfile's image built with podman and run in the lab) and each fuzz target for 30 s
# (scripts/fuzz.sh: needs the nightly toolchain; installs cargo-fuzz).
#
#   bash scripts/test.sh            everything
#   cargo test --workspace -- --skip lab_    only the tests that need no root
set -euo pipefail
cd "$(dirname "$0")/.."

# The NAT lab needs iproute2 (ip netns, veth, bridges), nftables (the NAT routers) and
# conntrack (to inspect and flush NAT state).
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
command -v conntrack >/dev/null || need+=(conntrack)
# The lab's upnp router runs a UPnP-IGD gateway (miniupnpd, its nftables build); its self
# test maps a port with miniupnpc's client.
dpkg -s miniupnpd-nftables >/dev/null 2>&1 || need+=(miniupnpd-nftables)
command -v upnpc >/dev/null || need+=(miniupnpc)
# The container tests: podman and buildah (with runc) build and run the image; there is no
# registry, so debootstrap makes the base images the Dockerfile's FROM lines name.
command -v podman >/dev/null || need+=(podman)
command -v buildah >/dev/null || need+=(buildah)
command -v runc >/dev/null || need+=(runc)
command -v debootstrap >/dev/null || need+=(debootstrap)
# The interop tests run foreign libp2p peers: js-libp2p (Node.js >= 20 and npm) and
# py-libp2p (Python 3 with venv; its fastecdsa dependency builds from source with gcc and
# the GMP headers).
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v python3 >/dev/null || need+=(python3)
python3 -m venv --help >/dev/null 2>&1 || need+=(python3-venv)
command -v gcc >/dev/null || need+=(gcc)
dpkg -s libgmp-dev >/dev/null 2>&1 || need+=(libgmp-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "The NAT lab and interop tests need root and ${need[*]}: run this as root, or run only" >&2
    echo "the tests that need no root: cargo test --workspace -- --skip lab_ --skip interop" >&2
    exit 1
  fi
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
fi

# The foreign probes' own dependencies, pinned: the npm lockfile and the pip freeze.
(cd tests/interop/js && npm ci --no-audit --no-fund)
[ -x tests/interop/py/.venv/bin/python ] || python3 -m venv tests/interop/py/.venv
tests/interop/py/.venv/bin/pip install --quiet --disable-pip-version-check \
  -r tests/interop/py/requirements.txt
# podman-compose, pinned, for the compose test (tests/tests/lab_compose.rs).
[ -x tests/compose/.venv/bin/python ] || python3 -m venv tests/compose/.venv
tests/compose/.venv/bin/pip install --quiet --disable-pip-version-check \
  -r tests/compose/requirements.txt

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The integration tests run the real binary; build it before them.
cargo build --workspace --bins --locked
# The base images for the container tests (kept when present); the tests build the image.
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/container/containers.conf}"
bash container/base-images.sh
cargo test --workspace --locked
# The fuzz targets, built with the nightly toolchain, 30 s each from the committed corpus.
bash scripts/fuzz.sh
