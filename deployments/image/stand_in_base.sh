#!/usr/bin/env bash
# Make a stand-in for the Dockerfile's base image (FROM) from Debian packages, for machines that
# cannot pull the public one; `make image` and tests/test_image.py both call this one recipe.
# Kept in local storage: a later call reuses it (making it takes about 3 minutes).
#
#   deployments/image/stand_in_base.sh            # the base named by the Dockerfile's FROM
#   DEBIAN_MIRROR=<url> deployments/image/...     # another mirror than the machine's apt sources
set -euo pipefail
cd "$(dirname "$0")/../.."

BUILDAH=(buildah --storage-driver "${STORAGE_DRIVER:-vfs}")
SUITE=bookworm
PYTHON=python3.11
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

# `FROM python:3.11-slim-bookworm` resolves to Docker Hub's library namespace; tag it the same way.
base_image_name() {
  local from
  from=$(awk 'toupper($1) == "FROM" { print $2; exit }' Dockerfile)
  case "$from" in
    */*/*) echo "$from" ;;
    */*) echo "docker.io/$from" ;;
    *) echo "docker.io/library/$from" ;;
  esac
}

# The first apt source of $SUITE on this machine (deb822 stanzas, then one-line entries): the
# mirror this machine can reach.
debian_mirror() {
  local mirror=""
  if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
    mirror=$(awk -v suite="$SUITE" 'BEGIN { RS = "" } {
        uri = ""; hit = 0; n = split($0, lines, "\n")
        for (i = 1; i <= n; i++) {
          k = split(lines[i], f, /[ \t]+/)
          if (f[1] == "URIs:") uri = f[2]
          if (f[1] == "Suites:") for (j = 2; j <= k; j++) if (f[j] == suite) hit = 1
        }
        if (hit && uri != "") { print uri; exit }
      }' /etc/apt/sources.list.d/*.sources)
  fi
  if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror=$(awk -v suite="$SUITE" '$1 == "deb" {
        line = $0; gsub(/\[[^]]*\]/, "", line); split(line, f)
        if (f[3] == suite) { print f[2]; exit }
      }' /etc/apt/sources.list)
  fi
  echo "$mirror"
}

main() {
  local name mirror ctr started
  name=$(base_image_name)
  if "${BUILDAH[@]}" inspect --type image "$name" >/dev/null 2>&1; then
    echo "Base image $name is in local storage: reusing it."
    return 0
  fi
  for tool in buildah mmdebstrap; do
    command -v "$tool" >/dev/null || {
      echo "$tool is missing: apt-get install -y buildah mmdebstrap (as root)" >&2
      exit 1
    }
  done
  [ -r "$CA_BUNDLE" ] || { echo "No CA bundle at $CA_BUNDLE: install ca-certificates" >&2; exit 1; }
  mirror=${DEBIAN_MIRROR:-$(debian_mirror)}
  [ -n "$mirror" ] || {
    echo "No apt source for $SUITE in /etc/apt/sources.list*: set DEBIAN_MIRROR=<mirror url>" >&2
    exit 1
  }
  started=$SECONDS
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "Making a stand-in for $name from Debian $SUITE packages (about 3 minutes) ..."
  # Debian's Python refuses `pip install` into the system while EXTERNALLY-MANAGED exists (the
  # public image has no such file); the machine's CA bundle lets pip and uv reach the package
  # index through this network's TLS proxy; python/pip sit in /usr/local/bin as in the public one.
  mmdebstrap --quiet --variant=apt \
    --include=python3,python3-pip,python3-venv,ca-certificates,passwd \
    --customize-hook="rm -f \"\$1\"/usr/lib/$PYTHON/EXTERNALLY-MANAGED" \
    --customize-hook="cp $CA_BUNDLE \"\$1\"$CA_BUNDLE" \
    --customize-hook='ln -sf /usr/bin/python3 "$1"/usr/local/bin/python' \
    --customize-hook='ln -sf /usr/bin/pip3 "$1"/usr/local/bin/pip' \
    "$SUITE" "$work/rootfs.tar" "$mirror"
  ctr=$("${BUILDAH[@]}" from scratch)
  "${BUILDAH[@]}" add --quiet "$ctr" "$work/rootfs.tar" /
  "${BUILDAH[@]}" config \
    --env LANG=C.UTF-8 \
    --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env SSL_CERT_FILE="$CA_BUNDLE" \
    --env PIP_CERT="$CA_BUNDLE" \
    --cmd python3 \
    --label org.opencontainers.image.description="Stand-in for $name made from Debian packages" \
    "$ctr"
  "${BUILDAH[@]}" commit --quiet --rm "$ctr" "$name" >/dev/null
  echo "Made $name in $((SECONDS - started)) s."
}

main "$@"
