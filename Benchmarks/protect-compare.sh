#!/usr/bin/env bash
# Signed and encrypted checkpoints against plain ones (issue 13), in ONE
# run: W-save dense (A = T = 1 GiB) through pgallocbench, plain and
# `--protect signed-encrypted` alternating, REPS runs of each, the page cache
# dropped before every run (as compare.sh does); then lazybench touch
# (first-touch latency while the background load runs), plain and
# signed-encrypted alternating, LAZY_REPS runs of each. Prints every result
# line, then medians and the protected/plain ratios.
#
#   Benchmarks/protect-compare.sh                 # REPS=5 LAZY_REPS=3
#   REPS=7 CKPT_DIR=/var/tmp Benchmarks/protect-compare.sh
#
# Environment: REPS, LAZY_REPS (0: no lazy runs), CKPT_DIR (default /tmp),
# PROTECTS (default "signed-encrypted"; e.g. "signed encrypted" to see what
# each costs: every rep runs none, then each of them), NO_BUILD=1 to use the
# binaries already in Benchmarks/.build-exec/release.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
REPS="${REPS:-5}"
LAZY_REPS="${LAZY_REPS:-3}"
CKPT_DIR="${CKPT_DIR:-/tmp}"
PROTECTS="${PROTECTS:-signed-encrypted}"
BIN="$HERE/.build-exec/release"

if [ -z "${NO_BUILD:-}" ]; then
	for product in pgallocbench lazybench; do
		swift build -c release --package-path "$HERE" --scratch-path "$HERE/.build-exec" --product "$product" >&2 || exit 1
	done
fi

scratch="$CKPT_DIR/protect-compare-$$"
mkdir -p "$scratch"
trap 'rm -rf "$scratch"' EXIT
out="$scratch/../protect-compare-$$.tsv"
: >"$out"

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || echo "protect-compare: cannot drop caches (not root?)" >&2
}

for rep in $(seq 1 "$REPS"); do
	for protect in none $PROTECTS; do
		drop_caches
		line=$("$BIN/pgallocbench" --workload save -A 1GiB -T 1GiB --ckpt-dir "$scratch" --protect "$protect") || exit 1
		printf 'case=save-dense\tprotect=%s\trep=%s\t%s\n' "$protect" "$rep" "$line" | tee -a "$out"
		rm -rf "${scratch:?}"/*
	done
done
for rep in $(seq 1 "$LAZY_REPS"); do
	for protect in none $PROTECTS; do
		drop_caches
		line=$("$BIN/lazybench" touch -A 1GiB -T 1GiB --dir "$scratch" --protect "$protect") || exit 1
		printf 'case=lazy-touch\tprotect=%s\trep=%s\t%s\n' "$protect" "$rep" "$line" | tee -a "$out"
		rm -rf "${scratch:?}"/*
	done
done

PROTECTS="$PROTECTS" python3 - "$out" <<'EOF'
import os, statistics, sys
rows = []
for line in open(sys.argv[1]):
    rows.append(dict(f.split("=", 1) for f in line.rstrip("\n").split("\t") if "=" in f))
def med(case, protect, key):
    xs = [float(r[key]) for r in rows if r.get("case") == case and r.get("protect") == protect and key in r]
    return (statistics.median(xs), min(xs), max(xs), len(xs)) if xs else None
print()
print("medians (min-max, runs); ratio = protected / none")
for case, keys in [("save-dense", ["save_s", "restore_s", "ckpt_bytes"]), ("lazy-touch", ["usable_s", "p50_first_us", "p99_first_us", "p50_all_us", "p99_all_us"])]:
    for key in keys:
        for protect in os.environ["PROTECTS"].split():
            a = med(case, "none", key)
            b = med(case, protect, key)
            if not a or not b:
                continue
            print(f"{case:11s} {key:14s} none {a[0]:.6g} ({a[1]:.6g}-{a[2]:.6g}, {a[3]})  {protect} {b[0]:.6g} ({b[1]:.6g}-{b[2]:.6g}, {b[3]})  ratio {b[0] / a[0]:.3f}")
EOF
echo "results: $out"
