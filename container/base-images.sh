#!/usr/bin/env bash
# Makes, on a machine without a container registry, the base images the root Dockerfile's FROM
# lines name, so that the Dockerfile builds unchanged with `--pull=never`:
#
# - the Debian image (`docker.io/library/debian:<suite>-slim`): a minimal debootstrap of that
#   suite from the mirror this machine's apt uses, imported into podman;
# - the Rust image (`docker.io/library/rust:<version>-slim-<suite>`): that Debian image plus a C
#   toolchain and this machine's stable Rust toolchain, which must be the version the tag says.
#
# Images already present are kept; `--force` makes them again. Needs root, podman, buildah and
# debootstrap (the test command installs them). Prints how long each step took.
set -euo pipefail
cd "$(dirname "$0")/.."

force=false
[ "${1:-}" = "--force" ] && force=true

# The names, read from the Dockerfile so that they cannot drift from it.
debian_image=$(awk '$1 == "FROM" && $2 ~ /^docker\.io\/library\/debian:/ { print $2; exit }' Dockerfile)
rust_image=$(awk '$1 == "FROM" && $2 ~ /^docker\.io\/library\/rust:/ { print $2; exit }' Dockerfile)
if [ -z "$debian_image" ] || [ -z "$rust_image" ]; then
  echo "the Dockerfile names no docker.io/library/debian or docker.io/library/rust image" >&2
  exit 1
fi
suite=${debian_image#*:}
suite=${suite%%-*}
rust_version=${rust_image#*:}
rust_version=${rust_version%%-*}

# The mirror apt uses for the suite on this machine (deb822 .sources files or sources.list).
apt_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    awk -v suite="$suite" '
      BEGIN { RS = ""; FS = "\n" }
      {
        uri = ""; ok = 0; deb = 0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { split(substr($i, 6), u, " "); uri = u[1] }
          if ($i ~ /^Suites:/) { n = split(substr($i, 8), s, " "); for (j = 1; j <= n; j++) if (s[j] == suite) ok = 1 }
          if ($i ~ /^Types:/ && $i ~ /(^|[ :])deb( |$)/) deb = 1
          if ($i ~ /^Enabled: *no/) ok = 0
        }
        if (ok && deb && uri != "") { print uri; exit }
      }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -e "$f" ] || continue
    sed -E 's/\[[^]]*\]//' "$f" | awk -v suite="$suite" '$1 == "deb" && $3 == suite { print $2 }'
  done
}

seconds() { date +%s.%N; }

# Unmounts whatever is mounted under $1, deepest first.
unmount_all() {
  local target
  awk -v root="$1/" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r target; do umount -l "$target"; done
}

elapsed() { awk -v a="$1" -v b="$(seconds)" 'BEGIN { printf "%.1f", b - a }'; }

if $force || ! podman image exists "$debian_image"; then
  mirror=$(apt_mirror | head -n 1)
  if [ -z "$mirror" ]; then
    echo "no apt source for $suite on this machine: cannot debootstrap" >&2
    exit 1
  fi
  start=$(seconds)
  root=$(mktemp -d)
  trap 'unmount_all "$root"; rm -rf --one-file-system "$root"' EXIT
  debootstrap --variant=minbase "$suite" "$root" "$mirror" >/dev/null
  # debootstrap may leave /proc mounted in the tree: an image holds no mounts.
  unmount_all "$root"
  # Slim, like the registry's image: no package lists, caches, manuals or translations.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log
  find "$root"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  tar -C "$root" --one-file-system -c . | podman import --change 'CMD ["bash"]' - "$debian_image" >/dev/null
  unmount_all "$root"
  rm -rf --one-file-system "$root"
  trap - EXIT
  echo "base image $debian_image: debootstrap of $suite and import took $(elapsed "$start") s"
else
  echo "base image $debian_image: present"
fi

if $force || ! podman image exists "$rust_image"; then
  sysroot=$(rustc +stable --print sysroot 2>/dev/null || rustc --print sysroot)
  have=$("$sysroot/bin/rustc" --version | awk '{ print $2 }')
  case "$have" in
    "$rust_version" | "$rust_version".*) ;;
    *)
      echo "the Dockerfile wants Rust $rust_version, this machine's stable toolchain is $have" >&2
      exit 1
      ;;
  esac
  start=$(seconds)
  ctr=$(buildah from --pull-never "$debian_image")
  trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
  buildah run --network host "$ctr" -- sh -c 'apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev ca-certificates >/dev/null &&
    rm -rf /var/lib/apt/lists/*'
  mnt=$(buildah mount "$ctr")
  mkdir -p "$mnt/usr/local/rust" "$mnt/usr/local/cargo"
  # The toolchain without its documentation (most of its size).
  tar -C "$sysroot" --exclude=./share/doc -c . | tar -C "$mnt/usr/local/rust" -x
  buildah umount "$ctr" >/dev/null
  buildah config \
    --env CARGO_HOME=/usr/local/cargo \
    --env PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    "$ctr"
  buildah commit --quiet --rm "$ctr" "$rust_image" >/dev/null
  trap - EXIT
  echo "builder image $rust_image: Rust $have took $(elapsed "$start") s"
else
  echo "builder image $rust_image: present"
fi
