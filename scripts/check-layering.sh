#!/usr/bin/env bash
# Checks that Sources/Checkpoint/Writer and the reading side
# (Sources/Checkpoint/Reader and Restore) do not use each other's types:
# lists the types, protocols and free functions each side declares, and
# looks for their names in the other side's files. Prints each use found
# and exits 1 if there is one.
set -euo pipefail
cd "$(dirname "$0")/.."
declared() {
    grep -hoE '^(public |package |private |fileprivate )?(final )?(struct|class|enum|protocol|func|typealias) [A-Za-z_][A-Za-z0-9_]*' "$@" \
        | awk '{print $NF}' | sort -u
}
status=0
check() {
    local from="$1" to="$2"
    for name in $(declared $(find "$from" -name '*.swift')); do
        if hits=$(grep -nwE "$name" $(find $to -name '*.swift')); then
            echo "$from declares $name, used in:"
            echo "$hits" | sed 's/^/  /'
            status=1
        fi
    done
}
check Sources/Checkpoint/Writer "Sources/Checkpoint/Reader Sources/Checkpoint/Restore"
check Sources/Checkpoint/Reader Sources/Checkpoint/Writer
check Sources/Checkpoint/Restore Sources/Checkpoint/Writer
[ "$status" = 0 ] && echo "check-layering: Writer/ and Reader/+Restore/ use none of each other's declarations"
exit "$status"
