#!/usr/bin/env bash
# Installs what building this package needs and a fresh Debian machine with
# Swift may lack: libzstd-dev (the zstd headers and library, through
# pkg-config), and make (test.sh runs the TSan and fuzz targets with it). Does nothing when everything is there. Sourced by demo.sh
# and test.sh; needs root (or sudo) only when something must be installed.
set -euo pipefail

pgsnap_missing_packages() {
    local missing=""
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing="$missing $p"
        fi
    done
    echo "$missing"
}

pgsnap_install() {
    local missing
    missing=$(pgsnap_missing_packages "$@")
    [ -z "$missing" ] && return 0
    echo "setup: installing:$missing" >&2
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || { echo "setup: need root to install$missing" >&2; exit 1; }
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    # The package lists of a fresh machine may be empty or stale.
    $sudo apt-get install -y --no-install-recommends $missing >/dev/null 2>&1 \
        || { $sudo apt-get update -qq && $sudo apt-get install -y --no-install-recommends $missing; }
}

pgsnap_install libzstd-dev pkg-config make

if ! command -v swift >/dev/null; then
    echo "setup: swift is not on PATH (this project needs Swift 6.1 or later)" >&2
    exit 1
fi
