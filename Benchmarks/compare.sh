#!/usr/bin/env bash
# Runs this project's pgallocbench and its peers on the reference workloads of
# shared/bench/WORKLOADS.md in ONE run, interleaved (rep 1 of every case, then
# rep 2, ...), writes every result line to a results file and prints medians,
# min-max and the ratios BENCHMARKS.md reports (Benchmarks/compare-summary.py).
#
#   Benchmarks/compare.sh                              # all cases, REPS=3
#   REPS=5 Benchmarks/compare.sh
#   CASES="churn frag" REPS=5 Benchmarks/compare.sh
#   CASES="save-dense save-default" Benchmarks/compare.sh
#
# Cases (CASES, default "churn frag save-dense save-default"):
#   churn            pgallocbench --workload churn      | gvbench -workload churn
#   frag             pgallocbench --workload frag       | gvbench -workload frag
#   save-dense       W-save A=T=1GiB: pgallocbench (variant pgsnap);
#                    gvbench -variant statefile and raw (GV_SAVE_VARIANTS);
#                    baselines on a live memfd held by wsave: cp --sparse=always
#                    + zstd -1 -T2, zstd -1 -T2 straight from the memfd, and
#                    restore `zstd -dc | cp --sparse=always` into /dev/shm
#   save-default     the same with A=8GiB T=1GiB
#   save-dense-4g, save-dense-16g
#                    the same with A=T=4GiB and A=T=16GiB (issue 15's scale
#                    targets; set GV_SAVE_VARIANTS="" and BASELINE_CP=0 to
#                    run only ours and zstd from the memfd)
#   save-dense-cold, save-default-cold
#                    the same, the checkpoint evicted from the page cache
#                    before restore (pgallocbench --cold, gvbench -cold, and a
#                    drop_caches before the baseline's restore)
#
# Environment:
#   REPS              repetitions of every case (default 3)
#   CASES             see above
#   CKPT_DIR          where checkpoints and the baselines' images go, in a
#                     directory of this run's own, $CKPT_DIR/pgallocbench-compare-PID
#                     (default CKPT_DIR=/tmp); everything is deleted after each run
#   OUT               results file (default $WORK_DIR/results-<time>.tsv)
#   WORK_DIR          default /tmp/pgallocbench-compare
#   PGALLOCBENCH      our binary; default: built (release) into
#                     Benchmarks/.build-exec unless NO_BUILD=1
#   GVBENCH           gVisor's harness; default /tmp/gvbench-build/gvbench,
#                     built from shared/bench/gvisor if missing, with the
#                     Debian packages Benchmarks/setup-compare.sh installs
#   GV_SAVE_VARIANTS  gvbench W-save variants (default "statefile raw"; empty: none)
#   WSAVE             wsave binary (default /tmp/wsave-bin/wsave, built with gcc)
#   OURS_SAVE_ARGS    extra pgallocbench save flags, e.g. "--threads 2 --level 1"
#   OURS_KEEP_ZERO    1 (default): also run ours with --keep-zero-pages (the
#                     save leaves the committed zero pages committed rather
#                     than decommit them as gVisor's does; variant
#                     pgsnap-keep-zero); 0: only ours with the library's defaults
#   BASELINE_CP       1 (default): run the cp --sparse + zstd baseline too;
#                     0: only zstd straight from the memfd (at 16 GiB the
#                     image copy alone takes minutes)
#   DROP_CACHES       1 (default): sync + drop the page cache before every
#                     W-save run and before the baselines' zstd-from-memfd step,
#                     as shared/bench/baselines does (needs root)
#
# Every line of the results file is gvbench's format (tab-separated
# key=value, the same keys) preceded by tool=ours|gvisor|baseline, case= and
# rep=. Summarise again with: python3 Benchmarks/compare-summary.py FILE
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SHARED="${SHARED:-$(cd "$ROOT/.." && pwd)/shared/bench}"
[ -d "$SHARED" ] || SHARED=/work/shared/bench
REPS="${REPS:-3}"
CASES="${CASES:-churn frag save-dense save-default}"
CKPT_DIR="${CKPT_DIR:-/tmp}"
WORK_DIR="${WORK_DIR:-/tmp/pgallocbench-compare}"
GV_SAVE_VARIANTS="${GV_SAVE_VARIANTS-statefile raw}"
OURS_SAVE_ARGS="${OURS_SAVE_ARGS:-}"
OURS_KEEP_ZERO="${OURS_KEEP_ZERO:-1}"
DROP_CACHES="${DROP_CACHES:-1}"
mkdir -p "$WORK_DIR" "$CKPT_DIR"
OUT="${OUT:-$WORK_DIR/results-$(date +%Y%m%d-%H%M%S).tsv}"
: >"$OUT"
SCRATCH="$CKPT_DIR/pgallocbench-compare-$$"

log() { echo "compare.sh: $*" >&2; }

# --- 1. Binaries -------------------------------------------------------------

# Debian packages: Go and gVisor's source for gVisor's harness, the tools the
# baselines run (installed when missing; root or sudo needed only then).
"$HERE/setup-compare.sh" || { log "cannot install what compare.sh needs"; exit 1; }

# Ours: release build in a private scratch path.
if [ -z "${PGALLOCBENCH:-}" ]; then
	PGALLOCBENCH="$HERE/.build-exec/release/pgallocbench"
	if [ "${NO_BUILD:-0}" != 1 ]; then
		log "building pgallocbench (release)"
		swift build -c release --package-path "$HERE" --scratch-path "$HERE/.build-exec" \
			--product pgallocbench >&2 || { log "swift build failed"; exit 1; }
	fi
fi
[ -x "$PGALLOCBENCH" ] || { log "no $PGALLOCBENCH"; exit 1; }

# gVisor's harness, built as shared/bench/gvisor/run.sh does (Debian's Go 1.19
# in GOPATH mode against Debian's gVisor source; no module proxy).
GVBENCH="${GVBENCH:-/tmp/gvbench-build/gvbench}"
if [ ! -x "$GVBENCH" ]; then
	log "building $GVBENCH from $SHARED/gvisor"
	mkdir -p "$(dirname "$GVBENCH")"
	(cd "$SHARED/gvisor" && GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= \
		GOCACHE="${GOCACHE:-$(dirname "$GVBENCH")/gocache}" go build -o "$GVBENCH" .) ||
		{ log "go build failed"; exit 1; }
fi

# wsave (the baselines' W-save holder and verifier).
WSAVE="${WSAVE:-/tmp/wsave-bin/wsave}"
if [ ! -x "$WSAVE" ]; then
	mkdir -p "$(dirname "$WSAVE")"
	gcc -O2 -march=native -Wall -o "$WSAVE" "$SHARED/baselines/wsave.c" || { log "gcc wsave failed"; exit 1; }
fi

# All three must agree on the generator and page contents, bit for bit.
for b in "$PGALLOCBENCH --workload selftest" "$GVBENCH -workload selftest"; do
	line=$($b) || { log "selftest failed: $b"; exit 1; }
	echo "$line" | grep -q 'pages_fnv1a64=0x6D0F1ADCF660C72E' || { log "selftest digest differs: $b: $line"; exit 1; }
done
"$WSAVE" check >/dev/null || { log "wsave check failed"; exit 1; }

# --- 2. Helpers --------------------------------------------------------------

drop_caches() {
	[ "$DROP_CACHES" = 1 ] || return 0
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || log "cannot drop caches (not root?)"
}

# emit TOOL CASE REP LINE: one result line, tagged.
emit() {
	printf 'tool=%s\tcase=%s\trep=%s\t%s\n' "$1" "$2" "$3" "$4" | tee -a "$OUT"
}

# run_tool TOOL CASE REP CMD...: runs a harness that prints one result line.
run_tool() {
	local tool=$1 c=$2 rep=$3
	shift 3
	local line rc
	line=$("$@" 2>"$WORK_DIR/stderr.txt")
	rc=$?
	if [ $rc -ne 0 ] || [ -z "$line" ]; then
		log "FAILED (rc=$rc): $*"
		sed 's/^/    /' "$WORK_DIR/stderr.txt" >&2
		emit "$tool" "$c" "$rep" "workload=error	variant=NA	command=$*	rc=$rc"
		return
	fi
	emit "$tool" "$c" "$rep" "$line"
}

now() { echo "$EPOCHREALTIME"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }
sum() { awk 'BEGIN { s = 0; for (i = 1; i < ARGC; i++) s += ARGV[i]; printf "%.6f", s }' "$@"; }
bytes_of() { # 1G -> 1073741824
	local n=${1%[KMG]} u=${1##*[0-9]}
	case "$u" in K) echo $((n << 10)) ;; M) echo $((n << 20)) ;; G) echo $((n << 30)) ;; *) echo "$n" ;; esac
}
size_of() { stat -c %s "$1"; }
committed_of() { echo $(($(stat -c %b "$1") * 512)); }

# timed VAR CMD...: runs CMD, sets VAR_s (seconds) and VAR_rss (max RSS KiB).
timed() {
	local var=$1
	shift
	local t0 t1
	t0=$(now)
	/usr/bin/time -f "%M" -o "$SCRATCH/.rss" "$@"
	local rc=$?
	t1=$(now)
	printf -v "${var}_s" '%s' "$(secs "$t0" "$t1")"
	printf -v "${var}_rss" '%s' "$(tail -1 "$SCRATCH/.rss")"
	[ $rc -eq 0 ] || log "FAILED (rc=$rc): $*"
	return $rc
}

# The baselines of shared/bench/baselines/bench_cpzstd.sh on a live memfd
# held by `wsave hold A T shared`. Prints two lines:
#   variant=cp-sparse+zstd1T2: save_s = cp --sparse=always + zstd -1 -T2 of
#     the image + fsync of the .zst (summarize.py's "SAVE cp+zstd-1(+fsync)";
#     the image's own fsync is reported as cp_fsync_s but not counted)
#   variant=zstd1T2-memfd: save_s = zstd -1 -T2 straight from the memfd +
#     fsync; restore_s = zstd -dc | cp --sparse=always into /dev/shm;
#     verified by wsave verify.
run_baseline() {
	local c=$1 rep=$2 A=$3 T=$4 cold=$5
	mkdir -p "$SCRATCH"
	rm -f "$SCRATCH"/out.img* "$SCRATCH"/direct.zst /dev/shm/pgallocbench-restored-$$
	"$WSAVE" hold "$A" "$T" shared "$SCRATCH/report" </dev/null >"$SCRATCH/hold.out" 2>&1 &
	local hpid=$! i
	HOLDER_PID=$hpid
	for i in $(seq 1 1200); do
		grep -q '^pid=' "$SCRATCH/hold.out" 2>/dev/null && break
		kill -0 $hpid 2>/dev/null || break
		sleep 0.1
	done
	local fd
	fd=$(sed -n 's/.* fd=\([0-9-]*\).*/\1/p' "$SCRATCH/hold.out")
	if [ -z "$fd" ]; then
		log "wsave hold failed: $(cat "$SCRATCH/hold.out")"
		kill $hpid 2>/dev/null
		wait $hpid 2>/dev/null
		emit baseline "$c" "$rep" "workload=error	variant=NA	command=wsave hold $A $T	rc=1"
		return
	fi
	local src=/proc/$hpid/fd/$fd
	local Ab Tb
	Ab=$(bytes_of "$A")
	Tb=$(bytes_of "$T")
	local common="A=$Ab	T=$Tb	stride=$((Ab / Tb))	cold=$cold"
	drop_caches

	# 1. cp --sparse=always from the live memfd, fsync; zstd -1 -T2 of the image, fsync.
	if [ "${BASELINE_CP:-1}" = 1 ]; then
	timed cp cp --sparse=always "$src" "$SCRATCH/out.img"
	timed cpsync sync "$SCRATCH/out.img"
	local img_bytes img_committed
	img_bytes=$(size_of "$SCRATCH/out.img")
	img_committed=$(committed_of "$SCRATCH/out.img")
	timed z zstd -q -1 -T2 "$SCRATCH/out.img" -o "$SCRATCH/out.img.zst"
	timed zsync sync "$SCRATCH/out.img.zst"
	local zbytes save_s
	zbytes=$(size_of "$SCRATCH/out.img.zst")
	save_s=$(sum "$cp_s" "$z_s" "$zsync_s")
	emit baseline "$c" "$rep" "workload=W-save	variant=cp-sparse+zstd1T2	ns_per_op=NA	file_size=$img_bytes	save_s=$save_s	restore_s=NA	ckpt_bytes=$zbytes	restored_committed_bytes=NA	peak_rss_kib=$(printf '%s\n' "$cp_rss" "$z_rss" | sort -n | tail -1)	verified=NA	$common	cp_s=$cp_s	cp_fsync_s=$cpsync_s	image_committed=$img_committed	zstd_s=$z_s	zstd_fsync_s=$zsync_s"
	rm -f "$SCRATCH"/out.img*
	fi

	# 2. zstd -1 -T2 straight from the memfd (-f: zstd skips /proc/PID/fd/N
	#    symlinks otherwise), fsync.
	drop_caches
	timed d zstd -q -f -1 -T2 "$src" -o "$SCRATCH/direct.zst"
	timed dsync sync "$SCRATCH/direct.zst"
	local dbytes dsave_s
	dbytes=$(size_of "$SCRATCH/direct.zst")
	dsave_s=$(sum "$d_s" "$dsync_s")
	kill $hpid 2>/dev/null
	wait $hpid 2>/dev/null
	HOLDER_PID=

	# 3. Restore: zstd -dc | cp --sparse=always into tmpfs (memfd-like; cp
	#    punches 4 KiB holes for zero pages), then verify with wsave.
	[ "$cold" = true ] && drop_caches
	local dst=/dev/shm/pgallocbench-restored-$$
	timed r sh -c "zstd -q -d -c '$SCRATCH/direct.zst' | cp --sparse=always /dev/stdin '$dst'"
	local rcommitted verified v0 v1 vline
	rcommitted=$(committed_of "$dst")
	v0=$(now)
	vline=$("$WSAVE" verify "$A" "$T" "$dst" 2>&1 | tail -1)
	v1=$(now)
	case "$vline" in *" OK") verified=true ;; *) verified=false ;; esac
	emit baseline "$c" "$rep" "workload=W-save	variant=zstd1T2-memfd	ns_per_op=NA	file_size=$(size_of "$dst")	save_s=$dsave_s	restore_s=$r_s	ckpt_bytes=$dbytes	restored_committed_bytes=$rcommitted	peak_rss_kib=$(printf '%s\n' "$d_rss" "$r_rss" | sort -n | tail -1)	verified=$verified	$common	zstd_s=$d_s	zstd_fsync_s=$dsync_s	save_peak_rss_kib=$d_rss	restore_peak_rss_kib=$r_rss	verify_s=$(secs "$v0" "$v1")"
	rm -f "$dst" "$SCRATCH/direct.zst"
}

run_save_case() {
	local c=$1 rep=$2 A=$3 T=$4 cold=$5
	local ours_cold="" gv_cold=""
	if [ "$cold" = true ]; then
		ours_cold=--cold
		gv_cold=-cold
	fi
	# The tools of a case, in an order that reverses on even reps: on this
	# virtual machine the first run after a large one frees its memory pays
	# for host faults on the pages it takes again (see BENCHMARKS.md), so
	# no tool may always come first.
	local steps=(ours)
	[ "$OURS_KEEP_ZERO" = 1 ] && steps+=(ours-keep-zero)
	local v
	for v in $GV_SAVE_VARIANTS; do steps+=("gvisor:$v"); done
	steps+=(baseline)
	if [ $((rep % 2)) = 0 ]; then
		local reversed=() i
		for ((i = ${#steps[@]} - 1; i >= 0; i--)); do reversed+=("${steps[i]}"); done
		steps=("${reversed[@]}")
	fi
	# Every checkpoint goes to a directory of this run's own, emptied after
	# each tool (the harnesses delete theirs too, unless they fail).
	mkdir -p "$SCRATCH"
	local step
	for step in "${steps[@]}"; do
		case "$step" in
		ours | ours-keep-zero)
			local keep=""
			[ "$step" = ours-keep-zero ] && keep=--keep-zero-pages
			drop_caches
			# shellcheck disable=SC2086
			run_tool ours "$c" "$rep" "$PGALLOCBENCH" --workload save -A "${A}iB" -T "${T}iB" --ckpt-dir "$SCRATCH" $keep $ours_cold $OURS_SAVE_ARGS
			;;
		gvisor:*)
			drop_caches
			# shellcheck disable=SC2086
			run_tool gvisor "$c" "$rep" "$GVBENCH" -workload save -A "${A}iB" -T "${T}iB" -variant "${step#gvisor:}" -ckpt-dir "$SCRATCH" $gv_cold
			;;
		baseline) run_baseline "$c" "$rep" "$A" "$T" "$cold" ;;
		esac
		rm -rf "${SCRATCH:?}"/*
	done
}

run_case() {
	local c=$1 rep=$2
	case "$c" in
	churn)
		run_tool ours "$c" "$rep" "$PGALLOCBENCH" --workload churn
		run_tool gvisor "$c" "$rep" "$GVBENCH" -workload churn
		;;
	frag)
		run_tool ours "$c" "$rep" "$PGALLOCBENCH" --workload frag
		run_tool gvisor "$c" "$rep" "$GVBENCH" -workload frag
		;;
	save-dense) run_save_case "$c" "$rep" 1G 1G false ;;
	save-default) run_save_case "$c" "$rep" 8G 1G false ;;
	save-dense-4g) run_save_case "$c" "$rep" 4G 4G false ;;
	save-dense-16g) run_save_case "$c" "$rep" 16G 16G false ;;
	save-dense-cold) run_save_case "$c" "$rep" 1G 1G true ;;
	save-default-cold) run_save_case "$c" "$rep" 8G 1G true ;;
	*)
		log "unknown case $c"
		return 1
		;;
	esac
}

HOLDER_PID=
cleanup() {
	[ -n "$HOLDER_PID" ] && kill "$HOLDER_PID" 2>/dev/null
	rm -rf "$SCRATCH" /dev/shm/pgallocbench-restored-$$
}
trap cleanup EXIT

# --- 3. Run, interleaved -------------------------------------------------------

for c in $CASES; do
	case "$c" in churn | frag | save-dense | save-default | save-dense-4g | save-dense-16g | save-dense-cold | save-default-cold) ;;
	*) log "unknown case $c"; exit 2 ;;
	esac
done
log "results: $OUT"
log "ours: $PGALLOCBENCH; gVisor: $GVBENCH; wsave: $WSAVE; cases: $CASES; reps: $REPS"
for rep in $(seq 1 "$REPS"); do
	for c in $CASES; do
		log "rep $rep/$REPS: $c"
		run_case "$c" "$rep"
	done
done
log "results in $OUT"
echo
python3 "$HERE/compare-summary.py" "$OUT"
