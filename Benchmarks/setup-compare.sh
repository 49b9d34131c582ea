#!/usr/bin/env bash
# Installs what Benchmarks/compare.sh needs beyond what building this package
# needs (scripts/setup.sh, sourced first): Debian's Go toolchain and gVisor's
# source as a Go library with the two golang.org/x packages it imports, to
# build gVisor's harness (shared/bench/gvisor, GOPATH mode, no module proxy);
# gcc for the baselines' wsave; the zstd and GNU time commands; python3 for
# the summary. Does nothing when everything is there; needs root (or sudo)
# only when something must be installed.
set -euo pipefail

# shellcheck source=../scripts/setup.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/scripts/setup.sh"

pgsnap_install golang-go golang-gvisor-gvisor-dev golang-golang-x-sys-dev golang-golang-x-time-dev \
    gcc zstd time python3
