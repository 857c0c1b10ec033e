#!/usr/bin/env bash
# Build the service image: `scripts/build-image.sh [TAG]` (default localhost/semantic-search:dev).
#
# With a Docker engine this is a plain `docker build` (pass TORCH_INDEX_URL=<PyTorch's CPU wheel
# index> to keep CUDA out). Without one, it uses podman the way these machines need
# (scripts/podman-setup.sh first): runc, the host network, the local Debian base image, and
# the host's CA bundle and torch wheel folder mounted for pip.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-localhost/semantic-search:dev}
torch_index=${TORCH_INDEX_URL:-}

if docker info >/dev/null 2>&1; then
    exec docker build ${torch_index:+--build-arg TORCH_INDEX_URL="$torch_index"} -t "$tag" .
fi

args=(--runtime runc build --format docker --network host -t "$tag" ${PODMAN_BUILD_ARGS:-})
if podman image exists localhost/debian-base:bookworm; then
    args+=(--build-arg BASE_IMAGE=localhost/debian-base:bookworm)
fi
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    args+=(-v /etc/ssl/certs:/host-certs:ro --build-arg PIP_CERT=/host-certs/ca-certificates.crt)
fi
wheels=$(pip config get global.find-links 2>/dev/null || true)
if [[ -n "$wheels" && -d "$wheels" ]]; then
    args+=(-v "$wheels":/wheels:ro --build-arg PIP_FIND_LINKS=/wheels)
fi
[[ -n "$torch_index" ]] && args+=(--build-arg TORCH_INDEX_URL="$torch_index")
# --format docker keeps HEALTHCHECK, which podman's default OCI format drops.
exec podman "${args[@]}" .
