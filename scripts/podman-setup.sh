#!/usr/bin/env bash
# One-time setup for building and running the service container with podman on a
# machine without a Docker engine (see shared/notes/containers.md). Idempotent:
# installs podman/debootstrap/runc if missing, writes containers.conf, and makes
# the local base image localhost/debian-base:bookworm unless it already exists.
# Run as root.
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-localhost/debian-base:bookworm}
SUITE=${SUITE:-bookworm}

missing=()
for tool in podman debootstrap runc; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman debootstrap runc
fi

mkdir -p /etc/containers
conf=/etc/containers/containers.conf
want='[containers]
default_ulimits = []
netns = "host"

[engine]
cgroup_manager = "cgroupfs"'
if [[ ! -f $conf ]] || [[ "$(cat "$conf")" != "$want" ]]; then
    printf '%s\n' "$want" >"$conf"
fi

if podman image exists "$BASE_IMAGE"; then
    echo "podman-setup: $BASE_IMAGE already exists"
    exit 0
fi

# No image registry is reachable: build a minimal Debian root file system and import it.
mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
rootfs=$(mktemp -d /tmp/rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror"
# debootstrap leaves apt's package lists and the .debs it installed (80 MB) behind; every image
# layer on top would carry them. Builds run apt-get update before they install anything.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
tar -C "$rootfs" -c . | podman import - "$BASE_IMAGE"
echo "podman-setup: imported $BASE_IMAGE"
