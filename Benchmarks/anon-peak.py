#!/usr/bin/env python3
"""Runs a command and reports what its anonymous memory was made of at its peak.

Reads the process's RssAnon (/proc/PID/status) every 2 ms and, at each new
peak, its mappings (/proc/PID/smaps); prints the peak and the largest
mappings by anonymous bytes then. With --before S, the last peak reached in
the first S seconds instead (a phase of a longer run).

  Benchmarks/anon-peak.py -- pgsnap restore CKPT --quiet --exec -- true
  Benchmarks/anon-peak.py --before 80 -- pgallocbench --workload save -A 16GiB -T 16GiB
"""
import argparse
import re
import subprocess
import time


def rss_anon(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def mappings(pid):
    out, cur = [], None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                cur = [line.split(), 0]
                out.append(cur)
            elif line.startswith("Anonymous:") and cur is not None:
                cur[1] = int(line.split()[1])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=float, default=None, help="only peaks in the first S seconds")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("give the command after --")
    t0 = time.time()
    p = subprocess.Popen(command)
    peaks = []  # (seconds, RssAnon KiB, mappings)
    best = 0
    while p.poll() is None:
        try:
            a = rss_anon(p.pid)
            if a > best + 512:
                best = a
                peaks.append((time.time() - t0, a, mappings(p.pid)))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.002)
    rc = p.wait()
    chosen = [x for x in peaks if args.before is None or x[0] <= args.before]
    if not chosen:
        print("anon-peak: no peak recorded")
        return rc or 1
    t, a, maps = chosen[-1]
    print(f"peak RssAnon {a} KiB at {t:.2f} s (command exit status {rc})")
    for fields, anon in sorted(maps, key=lambda m: -m[1])[: args.top]:
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        name = fields[5] if len(fields) > 5 else ""
        print(f"{anon:>10} KiB anonymous of {(hi - lo) // 1024:>10} KiB mapped  {name}")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
