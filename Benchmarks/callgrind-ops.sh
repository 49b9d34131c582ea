#!/usr/bin/env bash
# Instructions per operation of W-churn and W-frag, for this project's
# allocator and gVisor's, counted by callgrind: figures that the machine's
# noise does not move, to put beside compare.sh's times.
#
#   Benchmarks/callgrind-ops.sh            # both workloads, REPS=3 runs each
#   REPS=1 Benchmarks/callgrind-ops.sh
#
# What is counted: only the allocator's own calls, with
# --toggle-collect on them (their callees included, the benchmark's loop
# not):
#   W-churn  MemoryFile.allocate + decRef (gVisor: Allocate + DecRef) over
#            the 10^6 operations, divided by 10^6. Ours also gives the count
#            without the reclaim that allocation does in line: under
#            valgrind the threads take turns, the reclaimer falls behind and
#            allocation takes back pending ranges itself (reclaimOrder,
#            decommitForReclaim, markReclaimedLocked), which it rarely does
#            natively (the reclaimer thread does it; gVisor's Allocate never
#            does).
#   W-frag   allocate (Allocate) in a run with --frag-m 10000 less a run
#            with --frag-m 1, divided by 9,999: the two-page allocations
#            alone, the 65,536 one-page ones of the set-up cancelling out.
# Both allocators' set-ups depend on when their reclaimers run, so the
# tree's shape, and the counts, differ by a few percent between runs:
# medians of REPS runs are printed.
#
# Environment: PGALLOCBENCH (default Benchmarks/.build-exec/release/
# pgallocbench, built if missing), GVBENCH (default /tmp/gvbench-build/gvbench,
# as compare.sh builds it), REPS (default 3), WORK_DIR (default
# /tmp/pgallocbench-callgrind).
#
# Valgrind 3.19 cannot read the DWARF 5 of Swift 6 binaries: ours is run
# from a copy without debug information (objcopy --strip-debug; symbols
# stay). Go's asynchronous preemption signals trip callgrind: gVisor's
# harness runs with GODEBUG=asyncpreemptoff=1.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPS="${REPS:-3}"
WORK_DIR="${WORK_DIR:-/tmp/pgallocbench-callgrind}"
PGALLOCBENCH="${PGALLOCBENCH:-$HERE/.build-exec/release/pgallocbench}"
GVBENCH="${GVBENCH:-/tmp/gvbench-build/gvbench}"
mkdir -p "$WORK_DIR"

# shellcheck source=../scripts/setup.sh
source "$HERE/../scripts/setup.sh"
pgsnap_install valgrind binutils

if [ ! -x "$PGALLOCBENCH" ]; then
    swift build -c release --package-path "$HERE" --scratch-path "$HERE/.build-exec" --product pgallocbench >&2
fi
if [ ! -x "$GVBENCH" ]; then
    echo "callgrind-ops.sh: no $GVBENCH (Benchmarks/compare.sh builds it)" >&2
    exit 1
fi
ours="$WORK_DIR/pgallocbench"
objcopy --strip-debug "$PGALLOCBENCH" "$ours"

OURS_ALLOC='$s7PGAlloc10MemoryFileC8allocate_4kind9directionAA0C5RangeVs6UInt64V_AA0B4KindOAA19AllocationDirectionOtKF'
OURS_DECREF='$s7PGAlloc10MemoryFileC6decRefyyAA0C5RangeVF'
GV_ALLOC='gvisor.dev/gvisor/pkg/sentry/pgalloc.(*MemoryFile).Allocate'
GV_DECREF='gvisor.dev/gvisor/pkg/sentry/pgalloc.(*MemoryFile).DecRef'

# collected OUT ARGS...: runs callgrind, prints the instructions collected.
collected() {
    local out=$1
    shift
    valgrind --tool=callgrind --callgrind-out-file="$out" "$@" 2>&1 >/dev/null |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

# inline_reclaim OUT: instructions of in-line reclaim inside the collected calls.
inline_reclaim() {
    callgrind_annotate --inclusive=yes "$1" 2>/dev/null |
        awk '/reclaimOrder|decommitForReclaim|markReclaimedLocked/ { gsub(",", "", $1); s += $1 } END { print s + 0 }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

churn_ours=() churn_ours_net=() churn_gv=() frag_ours=() frag_gv=()
for rep in $(seq 1 "$REPS"); do
    echo "callgrind-ops.sh: rep $rep/$REPS" >&2
    c=$(collected "$WORK_DIR/ours-churn.out" --toggle-collect="$OURS_ALLOC" --toggle-collect="$OURS_DECREF" \
        "$ours" --workload churn)
    i=$(inline_reclaim "$WORK_DIR/ours-churn.out")
    churn_ours+=($((c / 1000000)))
    churn_ours_net+=($(((c - i) / 1000000)))
    c=$(GODEBUG=asyncpreemptoff=1 collected "$WORK_DIR/gv-churn.out" --toggle-collect="$GV_ALLOC" \
        --toggle-collect="$GV_DECREF" "$GVBENCH" -workload churn)
    churn_gv+=($((c / 1000000)))
    a=$(collected "$WORK_DIR/ours-frag1.out" --toggle-collect="$OURS_ALLOC" "$ours" --workload frag --frag-m 1)
    b=$(collected "$WORK_DIR/ours-frag.out" --toggle-collect="$OURS_ALLOC" "$ours" --workload frag --frag-m 10000)
    frag_ours+=($(((b - a) / 9999)))
    a=$(GODEBUG=asyncpreemptoff=1 collected "$WORK_DIR/gv-frag1.out" --toggle-collect="$GV_ALLOC" \
        "$GVBENCH" -workload frag -frag-m 1)
    b=$(GODEBUG=asyncpreemptoff=1 collected "$WORK_DIR/gv-frag.out" --toggle-collect="$GV_ALLOC" \
        "$GVBENCH" -workload frag -frag-m 10000)
    frag_gv+=($(((b - a) / 9999)))
done

row() { # LABEL VALUES...
    local label=$1
    shift
    printf '%-58s %8s   (%s)\n' "$label" "$(printf '%s\n' "$@" | median)" "$*"
}
echo "instructions per operation, median of $REPS (each run)"
row "W-churn ours, allocate + decRef" "${churn_ours[@]}"
row "W-churn ours, without the reclaim done in line" "${churn_ours_net[@]}"
row "W-churn gVisor, Allocate + DecRef" "${churn_gv[@]}"
row "W-frag ours, per two-page allocate" "${frag_ours[@]}"
row "W-frag gVisor, per two-page Allocate" "${frag_gv[@]}"
