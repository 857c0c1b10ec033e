#!/usr/bin/env bash
# System packages for the `deploy` test tier: nginx (reverse proxy), Chromium and ChromeDriver
# (headless browser), and podman with a local base image (scripts/podman-setup.sh).
# Idempotent and quick when everything is there. Needs root (apt-get).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

missing=()
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if ((${#missing[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian package starts a system nginx on port 80; the tests run their own instances.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nginx 2>/dev/null; then
    systemctl stop nginx || true
fi
bash "$here/podman-setup.sh"
