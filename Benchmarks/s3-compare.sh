#!/usr/bin/env bash
# Save to and restore from an S3-compatible server on loopback (moto, as the
# tests run it: scripts/s3test/server.py) against the same to and from a
# local file, in ONE run, interleaved (rep 1 of every case, then rep 2, ...).
# Prints per case the median and range of the wall time, pgsnap's CPU time
# (user + system) and, for the S3 cases, the CPU time moto used meanwhile;
# then the ratios S3 / local.
#
#   Benchmarks/s3-compare.sh
#   REPS=7 ALLOCATED=2GiB TOUCHED=512MiB Benchmarks/s3-compare.sh
#
# Environment:
#   REPS       repetitions (default 5)
#   ALLOCATED  W-save allocated bytes of the source (default 1GiB)
#   TOUCHED    W-save written bytes (default 256MiB): the source is the raw
#              image of a W-save MemoryFile (../shared/bench/WORKLOADS.md),
#              made by `pgsnap demo` and restored to an image
#   WORK_DIR   where the image, checkpoints and restored images go (default
#              /tmp/pgsnap-s3-compare); deleted at the end
#   PGSNAP     the binary (default: built in release into .build-s3)
#   THREADS    pgsnap --threads (default: every core)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
REPS="${REPS:-5}"
ALLOCATED="${ALLOCATED:-1GiB}"
TOUCHED="${TOUCHED:-256MiB}"
WORK_DIR="${WORK_DIR:-/tmp/pgsnap-s3-compare}"
THREADS_ARGS=()
[ -n "${THREADS:-}" ] && THREADS_ARGS=(--threads "$THREADS")

cd "$ROOT"
source scripts/setup.sh
pgsnap_install_moto
if [ -z "${PGSNAP:-}" ]; then
    swift build -c release --scratch-path .build-s3 --product pgsnap >/dev/null
    PGSNAP="$ROOT/.build-s3/release/pgsnap"
fi

rm -rf "$WORK_DIR"
mkdir -p "$WORK_DIR"
server_dir="$WORK_DIR/server"
cleanup() {
    python3 scripts/s3test/server.py stop "$server_dir" >/dev/null 2>&1 || true
    rm -rf "$WORK_DIR"
}
trap cleanup EXIT
python3 scripts/s3test/server.py start "$server_dir" >/dev/null
# shellcheck disable=SC1091
source "$server_dir/env"
export AWS_ACCESS_KEY_ID="$PGSNAP_TEST_S3_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$PGSNAP_TEST_S3_SECRET_ACCESS_KEY"
export AWS_ENDPOINT_URL="$PGSNAP_TEST_S3_ENDPOINT" AWS_REGION=us-east-1
moto_pid=$(cat "$server_dir/moto.pid")
PGSNAP_TEST_S3_ENDPOINT="$PGSNAP_TEST_S3_ENDPOINT" python3 scripts/s3test/admin.py create-bucket bench

# The source: a W-save MemoryFile's checkpoint, restored to a raw image.
"$PGSNAP" demo --allocated "$ALLOCATED" --touched "$TOUCHED" --directory "$WORK_DIR/demo" --keep >/dev/null 2>&1
"$PGSNAP" restore "$WORK_DIR/demo/wsave.pgsnap" "$WORK_DIR/src.img" --quiet
rm -rf "$WORK_DIR/demo"
echo "source: W-save A=$ALLOCATED T=$TOUCHED raw image, $(du -h --apparent-size "$WORK_DIR/src.img" | cut -f1) apparent, $(du -h "$WORK_DIR/src.img" | cut -f1) allocated"
echo "pgsnap: $PGSNAP; moto $(python3 -c 'import moto; print(moto.__version__)') at $AWS_ENDPOINT_URL; $(nproc) cores"

# CPU seconds (user + system) of a process so far.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$1/stat"; }

results="$WORK_DIR/results.tsv"
: > "$results"
# run CASE COMMAND...: one timed run; appends "case wall pgsnap-cpu moto-cpu".
run() {
    local name="$1"
    shift
    sync
    local before after timing
    before=$(cpu_of "$moto_pid")
    /usr/bin/time -o "$WORK_DIR/time" -f "%e %U %S" "$@" >/dev/null 2>&1
    timing=$(tail -1 "$WORK_DIR/time")
    after=$(cpu_of "$moto_pid")
    read -r wall user sys <<<"$timing"
    printf '%s\t%s\t%s\t%s\n' "$name" "$wall" "$(echo "$user + $sys" | bc)" "$(echo "$after - $before" | bc)" >> "$results"
}

for rep in $(seq "$REPS"); do
    run save-local "$PGSNAP" save "$WORK_DIR/src.img" "$WORK_DIR/ck.pgsnap" --quiet "${THREADS_ARGS[@]}"
    run save-s3 "$PGSNAP" save "$WORK_DIR/src.img" s3://bench/ck.pgsnap --quiet "${THREADS_ARGS[@]}"
    rm -f "$WORK_DIR/out.img"
    run restore-local "$PGSNAP" restore "$WORK_DIR/ck.pgsnap" "$WORK_DIR/out.img" --quiet "${THREADS_ARGS[@]}"
    rm -f "$WORK_DIR/out.img"
    run restore-s3 "$PGSNAP" restore s3://bench/ck.pgsnap "$WORK_DIR/out.img" --quiet "${THREADS_ARGS[@]}"
    cmp -s "$WORK_DIR/src.img" "$WORK_DIR/out.img" || { echo "s3-compare: the restored image differs" >&2; exit 1; }
    rm -f "$WORK_DIR/out.img"
    echo "rep $rep done" >&2
done
echo "checkpoint: $(stat -c %s "$WORK_DIR/ck.pgsnap") bytes"

# moto's own cost, without pgsnap: the same parts uploaded one by one with
# boto3, then completed; and ranged GETs of one block each.
python3 - "$WORK_DIR/ck.pgsnap" <<'EOF'
import os, sys, time, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}))
data = open(sys.argv[1], "rb").read()
part = 8 << 20
started = time.time()
upload = s3.create_multipart_upload(Bucket="bench", Key="boto3")["UploadId"]
parts = []
for n, offset in enumerate(range(0, len(data), part), 1):
    etag = s3.upload_part(Bucket="bench", Key="boto3", UploadId=upload, PartNumber=n, Body=data[offset:offset + part])["ETag"]
    parts.append({"PartNumber": n, "ETag": etag})
uploaded = time.time()
s3.complete_multipart_upload(Bucket="bench", Key="boto3", UploadId=upload, MultipartUpload={"Parts": parts})
completed = time.time()
gets = 0
for offset in range(0, len(data), part):
    s3.get_object(Bucket="bench", Key="boto3", Range=f"bytes={offset}-{min(len(data), offset + part) - 1}")["Body"].read()
    gets += 1
read = time.time()
print(f"moto alone (boto3, one request at a time): {len(parts)} parts uploaded in {uploaded - started:.2f}s, "
      f"CompleteMultipartUpload {completed - uploaded:.2f}s, {gets} ranged GETs of 8 MiB {read - completed:.2f}s")
EOF

python3 - "$results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    case, wall, cpu, moto = line.split()
    rows.setdefault(case, []).append((float(wall), float(cpu), float(moto)))
med = {}
print(f"{'case':<14} {'runs':>4} {'wall median':>12} {'wall range':>14} {'pgsnap CPU':>11} {'moto CPU':>9}")
for case in ("save-local", "save-s3", "restore-local", "restore-s3"):
    r = rows[case]
    walls = [x[0] for x in r]
    med[case] = statistics.median(walls)
    cpu = statistics.median(x[1] for x in r)
    moto = statistics.median(x[2] for x in r)
    print(f"{case:<14} {len(r):>4} {med[case]:>11.2f}s {min(walls):>6.2f}-{max(walls):<6.2f}s {cpu:>10.2f}s {moto:>8.2f}s")
for op in ("save", "restore"):
    print(f"{op}: S3 / local = {med[op + '-s3'] / med[op + '-local']:.2f}")
EOF
