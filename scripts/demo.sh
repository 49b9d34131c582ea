#!/usr/bin/env bash
# The main job: builds pgsnap in release mode and runs its demo, a real
# save/restore round trip of a scaled W-save workload with its figures, then
# pgsnap save/restore on a raw memory image. Extra arguments go to
# `pgsnap demo` (see `pgsnap demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
swift build -c release --product pgsnap 2>&1 | grep -Ev '^(\[[0-9]+/[0-9]+\]|Building|Compiling|Write|Linking)' || true
exec "$(swift build -c release --show-bin-path)/pgsnap" demo "$@"
