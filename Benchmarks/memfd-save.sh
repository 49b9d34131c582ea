#!/usr/bin/env bash
# Saving another process's memfd, as a new user would: `pgsnap save
# /proc/PID/fd/N` against `zstd -1 -T2` from the same memfd (each followed
# by a sync of its output, which pgsnap does itself), on the W-save dense
# memory held by `wsave hold SIZE SIZE shared`, alternating, REPS times
# each. Unlike pgallocbench's W-save, which saves a MemoryFile (and so
# decommits its zero pages, as gVisor's save does), this source is a raw
# memfd that the save only reads.
#
#   Benchmarks/memfd-save.sh 4G        # REPS=3 by default
#   REPS=5 Benchmarks/memfd-save.sh 1G
#
# Prints one line per run and the medians with their ratio. Needs a
# release pgsnap (PGSNAP, default .build/release/pgsnap: `swift build -c
# release --product pgsnap`) and wsave (WSAVE, built by compare.sh).
set -euo pipefail
SIZE=${1:?usage: memfd-save.sh SIZE}
REPS=${REPS:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PGSNAP=${PGSNAP:-$ROOT/.build/release/pgsnap}
WSAVE=${WSAVE:-/tmp/wsave-bin/wsave}
OUT=${OUT_DIR:-/tmp/memfd-save}
mkdir -p "$OUT"
[ -x "$PGSNAP" ] || { echo "memfd-save.sh: no $PGSNAP (swift build -c release --product pgsnap)" >&2; exit 1; }
[ -x "$WSAVE" ] || { echo "memfd-save.sh: no $WSAVE (Benchmarks/compare.sh builds it)" >&2; exit 1; }

"$WSAVE" hold "$SIZE" "$SIZE" shared "$OUT/report" </dev/null >"$OUT/hold.out" 2>&1 &
holder=$!
trap 'kill $holder 2>/dev/null; rm -f "$OUT"/out.*' EXIT
for _ in $(seq 1 1200); do
	grep -q '^pid=' "$OUT/hold.out" 2>/dev/null && break
	kill -0 $holder 2>/dev/null || { cat "$OUT/hold.out" >&2; exit 1; }
	sleep 0.2
done
fd=$(sed -n 's/.* fd=\([0-9-]*\).*/\1/p' "$OUT/hold.out")
src=/proc/$holder/fd/$fd

now() { date +%s.%N; }
run() { # run NAME COMMAND...: seconds to the end of COMMAND
	local t0 t1
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
	t0=$(now)
	"$@"
	t1=$(now)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}
zs=()
ps=()
for rep in $(seq 1 "$REPS"); do
	rm -f "$OUT"/out.*
	z=$(run sh -c "zstd -q -f -1 -T2 '$src' -o '$OUT/out.zst' && sync '$OUT/out.zst'")
	zbytes=$(stat -c %s "$OUT/out.zst")
	rm -f "$OUT"/out.*
	p=$(run "$PGSNAP" save "$src" "$OUT/out.pgsnap" --quiet)
	pbytes=$(stat -c %s "$OUT/out.pgsnap")
	echo "rep=$rep size=$SIZE zstd_s=$z zstd_bytes=$zbytes pgsnap_s=$p pgsnap_bytes=$pbytes"
	zs+=("$z")
	ps+=("$p")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
zm=$(median "${zs[@]}")
pm=$(median "${ps[@]}")
echo "size=$SIZE reps=$REPS zstd_median_s=$zm pgsnap_median_s=$pm ratio=$(awk -v p="$pm" -v z="$zm" 'BEGIN { printf "%.3f", p / z }')"
