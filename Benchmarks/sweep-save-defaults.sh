#!/usr/bin/env bash
# Sweeps the zstd level and the frame size over the dense W-save case (A = T
# = 1 GiB), interleaved (rep 1 of every setting, then rep 2, ...), dropping
# the page cache before every run (root). Prints pgallocbench's lines, each
# preceded by tool=ours, rep=, cfg_level= and cfg_frame=; compare-summary.py
# gives the medians per setting. BENCHMARKS.md, "Save defaults", reports one
# run of it.
#
#   swift build -c release --package-path Benchmarks --scratch-path Benchmarks/.build-exec --product pgallocbench
#   Benchmarks/sweep-save-defaults.sh > sweep.tsv
#   python3 Benchmarks/compare-summary.py sweep.tsv
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
B="${PGALLOCBENCH:-$HERE/.build-exec/release/pgallocbench}"
for rep in 1 2 3; do
  for cfg in "1 8MiB" "2 8MiB" "3 8MiB" "-1 8MiB" "1 1MiB" "1 2MiB" "1 4MiB" "1 16MiB"; do
    set -- $cfg
    sync; echo 3 > /proc/sys/vm/drop_caches
    line=$($B --workload save -A 1GiB -T 1GiB --level $1 --frame-size $2)
    echo "tool=ours	rep=$rep	cfg_level=$1	cfg_frame=$2	$line"
  done
done
