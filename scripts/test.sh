#!/usr/bin/env bash
# The test command: every test of every module (unit, model-based,
# round trips, crash safety, CLI, fixtures, object storage against a local
# S3 server), the allocator's tests again under ThreadSanitizer, and a short
# fuzz run of the checkpoint reader.
# Installs what it needs first (see setup.sh). CI runs exactly this.
#
#   ./scripts/test.sh            everything
#   SKIP_TSAN=1 SKIP_FUZZ=1 ./scripts/test.sh   the plain test suite only
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

step() { printf '\n== %s\n' "$*"; }
started=$(date +%s)

step "start the S3 test server (moto with signature checking, and a fault proxy)"
pgsnap_install_moto
s3_dir=$(mktemp -d /tmp/pgsnap-s3test.XXXXXX)
trap 'python3 scripts/s3test/server.py stop "$s3_dir"; rm -rf "$s3_dir"' EXIT
python3 scripts/s3test/server.py start "$s3_dir" | sed 's/\(SECRET_ACCESS_KEY=\|SESSION_TOKEN=\).*/\1(hidden)/'
# shellcheck disable=SC1091
source "$s3_dir/env"

step "build and run every test (debug)"
swift build --build-tests
set +e
swift test --skip-build > .test-output.log 2>&1
status=$?
set -e
# The summary: suites, failures, skips, seeds of randomized tests.
grep -E "^(Test Suite '[^']+' (passed|failed)|Test Case .* (failed|skipped)|.*: error: |.*seed)" .test-output.log || true
if [ "$status" != 0 ]; then
    echo "test.sh: the test suite failed (exit $status; full output in .test-output.log)" >&2
    exit "$status"
fi

if [ -z "${SKIP_TSAN:-}" ]; then
    step "the allocator's tests under ThreadSanitizer"
    make tsan
fi

if [ -z "${SKIP_FUZZ:-}" ] && [ -d Fuzz ]; then
    step "a short fuzz run of the checkpoint reader"
    make fuzz-short
fi

step "all passed in $(( $(date +%s) - started )) s"
