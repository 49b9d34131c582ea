#!/usr/bin/env bash
# Installs what building this package needs and a fresh Debian machine with
# Swift may lack: libzstd-dev, libxxhash-dev and libcurl4-openssl-dev
# (headers and libraries, through pkg-config), libipsec-mb-dev on amd64
# (Intel's multi-buffer crypto library, for page hashes), and make (test.sh
# runs the TSan and fuzz targets with it); pgsnap_install_moto, which
# test.sh calls, installs the S3 server the object-store tests use. Does
# nothing when everything is there. Sourced by demo.sh and test.sh; needs
# root (or sudo) only when something must be installed.
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

pgsnap_install libzstd-dev libxxhash-dev libcurl4-openssl-dev pkg-config make
# Debian packages Intel's library for amd64 only; elsewhere page hashes are
# computed with swift-crypto, one page at a time.
if [ "$(dpkg --print-architecture)" = amd64 ]; then
    pgsnap_install libipsec-mb-dev
fi

# The object-store tests run moto's S3 server (scripts/s3test/server.py):
# `pip install 'moto[server]'` when it is missing, with pip itself from
# Debian (python3-pip) if needed. A Debian-managed Python refuses a plain
# `pip install` (PEP 668): then the packages go to the user's site
# directory, outside Debian's.
pgsnap_install_moto() {
    command -v python3 >/dev/null || pgsnap_install python3
    if python3 -c 'import moto.server, boto3' 2>/dev/null; then
        return 0
    fi
    python3 -m pip --version >/dev/null 2>&1 || pgsnap_install python3-pip
    echo "setup: installing moto[server] with pip" >&2
    python3 -m pip install --quiet 'moto[server]' \
        || python3 -m pip install --quiet --user --break-system-packages 'moto[server]'
    python3 -c 'import moto.server, boto3' || { echo "setup: moto could not be installed" >&2; exit 1; }
}

if ! command -v swift >/dev/null; then
    echo "setup: swift is not on PATH (this project needs Swift 6.1 or later)" >&2
    exit 1
fi
