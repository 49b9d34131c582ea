#!/usr/bin/env bash
# The main job: builds pgsnap in release mode and runs its demo, a real
# save/restore round trip of a scaled W-save workload with its figures; then
# the pgsnap commands themselves on a raw sparse memory image. Extra
# arguments go to `pgsnap demo` (see `pgsnap demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
# The build's own progress lines are hidden; a failed build still stops
# the script (pipefail), whatever grep finds.
swift build -c release --product pgsnap 2>&1 | { grep -Ev '^(\[[0-9]+/[0-9]+\]|Building|Compiling|Write|Linking)' || true; }
pgsnap="$(swift build -c release --show-bin-path)/pgsnap"
"$pgsnap" demo "$@"

# The command line on memory pgsnap did not allocate: a 256 MiB sparse
# image with text, random bytes, a written run of zeros and holes.
work=$(mktemp -d /tmp/pgsnap-cli-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
image="$work/memory.img"
truncate -s 256M "$image"
head -c 24M < <(yes "guest memory, page after page") | dd of="$image" bs=1M seek=16 conv=notrunc iflag=fullblock status=none
head -c 8M /dev/urandom | dd of="$image" bs=1M seek=100 conv=notrunc iflag=fullblock status=none
head -c 4M /dev/zero | dd of="$image" bs=1M seek=200 conv=notrunc iflag=fullblock status=none
run() { printf '\n$ %s\n' "$*" | sed "s#$work#\$DIR#g; s#$pgsnap#pgsnap#g"; "$@" 2>&1 | sed "s#$work#\$DIR#g"; }
echo
echo "pgsnap on a raw sparse image (\$DIR is a scratch directory)"
run du -h --apparent-size "$image"
run du -h "$image"
run "$pgsnap" save "$image" "$work/memory.ckpt"
run "$pgsnap" inspect "$work/memory.ckpt"
run "$pgsnap" verify "$work/memory.ckpt"
run "$pgsnap" restore "$work/memory.ckpt" "$work/restored.img"
run cmp "$image" "$work/restored.img"
echo "(no output from cmp: the bytes are identical)"
run du -h "$work/restored.img"

# An incremental save: 1 MiB of the image changes; the child stores only
# that, and restores (with its parent) to the whole image.
echo
echo "an incremental checkpoint of the same image after 1 MiB changed"
head -c 1M /dev/urandom | dd of="$image" bs=1M seek=40 conv=notrunc iflag=fullblock status=none
run "$pgsnap" save "$image" "$work/memory.child.ckpt" --parent "$work/memory.ckpt"
run du -b "$work/memory.ckpt" "$work/memory.child.ckpt"
run sh -c "'$pgsnap' inspect '$work/memory.child.ckpt' | sed -n '/^identity/,/^\$/p'"
run "$pgsnap" verify "$work/memory.child.ckpt"
run "$pgsnap" restore "$work/memory.child.ckpt" "$work/restored.img"
run cmp "$image" "$work/restored.img"
echo "(no output from cmp: the chain restores the changed image)"
run "$pgsnap" flatten "$work/memory.child.ckpt" "$work/memory.flat.ckpt"
