#!/usr/bin/env python3
"""Summarise the results of Benchmarks/compare.sh.

usage: compare-summary.py RESULTS.tsv [...]

Every input line is tab-separated key=value: tool=ours|gvisor|baseline,
case=, rep=, then the line pgallocbench / gvbench / the baseline steps
printed (workload, variant, ns_per_op, file_size, save_s, restore_s,
ckpt_bytes, ...).

Prints, per tool / workload / variant / size (dense = A=T=1GiB, default =
A=8GiB T=1GiB) / cold: median [min .. max] of every figure; then the ratios
BENCHMARKS.md reports, each as the ratio of the two medians and as the
median [min .. max] of the per-rep ratios (ours and the peer of the same
rep, which ran next to each other), with the target it is compared with.
"""
import statistics
import sys
from collections import OrderedDict, defaultdict

GIB = 1 << 30
MIB = 1 << 20

FIGURES = [
    "ns_per_op", "file_size", "save_s", "restore_s", "ckpt_bytes",
    "restored_committed_bytes", "peak_rss_kib",
    "peak_rss_anon_save_kib", "peak_rss_anon_restore_kib", "rss_anon_before_save_kib",
    "added_rss_anon_save_kib", "added_rss_anon_restore_kib", "usage_set_segments_restored", "usage_set_bytes_restored",
    "save_frames", "save_zero_bytes_dropped",
    "save_first_write_s", "save_first_frame_s", "update_usage_s", "write_s", "verify_s",
    "reclaim_wait_s", "loop_run_s", "loop_wait_s", "loop_preempted",
    "src_committed_after_save", "restored_committed_after_verify",
    "cp_s", "cp_fsync_s", "zstd_s", "zstd_fsync_s", "save_peak_rss_kib", "restore_peak_rss_kib",
]


def size_label(kv):
    try:
        a, t = int(kv["A"]), int(kv["T"])
    except (KeyError, ValueError):
        return ""
    if a == GIB and t == GIB:
        return "dense"
    if a == 8 * GIB and t == GIB:
        return "default"
    if a == t and a in (4 * GIB, 16 * GIB):
        return f"dense-{a // GIB}g"
    return f"A={a // MIB}MiB,T={t // MIB}MiB"


def group_key(kv):
    """(tool, workload, variant, size, cold); a setting of
    sweep-save-defaults.sh (cfg_level=, cfg_frame=) is part of the variant."""
    size = size_label(kv) if kv.get("workload") == "W-save" else ""
    cold = kv.get("cold", "false") == "true"
    variant = kv.get("variant", "?")
    if "cfg_level" in kv:
        variant += f" level={kv['cfg_level']} frame={kv.get('cfg_frame', '?')}"
    return (kv.get("tool", "?"), kv.get("workload", "?"), variant, size, cold)


def name_of(key):
    tool, workload, variant, size, cold = key
    parts = [tool, workload, variant]
    if size:
        parts.append(size)
    if cold:
        parts.append("cold")
    return " ".join(parts)


def num(v):
    if v == 0:
        return "0"
    if abs(v) >= 1000 and float(v).is_integer():
        return f"{int(v):,}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def main(paths):
    groups = OrderedDict()  # key -> {"runs": [kv...]}
    errors = []
    for path in paths:
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if not line:
                    continue
                kv = {}
                for field in line.split("\t"):
                    k, sep, v = field.partition("=")
                    if sep:
                        kv[k] = v
                if kv.get("workload") == "error":
                    errors.append(kv)
                    continue
                if "workload" not in kv:
                    continue
                groups.setdefault(group_key(kv), []).append(kv)

    print("== Figures: median [min .. max] per tool / workload / variant / size\n")
    for key, runs in groups.items():
        verified = sum(1 for r in runs if r.get("verified") == "true")
        na = all(r.get("verified", "NA") == "NA" for r in runs)
        vtext = "verified=NA" if na else f"verified={verified}/{len(runs)}"
        print(f"{name_of(key)}: runs={len(runs)} {vtext}")
        for fig in FIGURES:
            vals = [float(r[fig]) for r in runs if fig in r and r[fig] not in ("NA", "")]
            if not vals:
                continue
            med = statistics.median(vals)
            extra = ""
            if fig.endswith("_kib"):
                extra = f"  ({med / 1024:.1f} MiB)"
            elif fig in ("ckpt_bytes", "file_size", "restored_committed_bytes", "src_committed_after_save",
                         "restored_committed_after_verify"):
                extra = f"  ({med / MIB:.1f} MiB)"
            print(f"  {fig:32} median {num(med):>14} [{num(min(vals))} .. {num(max(vals))}]{extra}")
    for e in errors:
        print(f"ERROR: tool={e.get('tool')} case={e.get('case')} rep={e.get('rep')} rc={e.get('rc')}: {e.get('command')}")
    print()

    def runs_of(tool, workload, variant, size="", cold=False):
        return groups.get((tool, workload, variant, size, cold), [])

    def by_rep(runs, fig):
        out = {}
        for r in runs:
            v = r.get(fig)
            if v in (None, "NA", ""):
                continue
            out.setdefault(r.get("rep"), float(v))
        return out

    rows = []

    def ratio(label, num_sel, den_sel, fig, den_fig=None, target=None, note="", scale=1.0):
        """ours/peer: medians ratio and per-rep paired ratios; the
        numerator is divided by `scale` (per GiB, for sizes)."""
        den_fig = den_fig or fig
        a = {r: v / scale for r, v in by_rep(runs_of(*num_sel), fig).items()}
        b = by_rep(runs_of(*den_sel), den_fig)
        if not a or not b:
            return
        ma, mb = statistics.median(a.values()), statistics.median(b.values())
        paired = [a[r] / b[r] for r in a if r in b and b[r] != 0]
        rows.append((label, num(ma), num(mb), ma / mb if mb else float("nan"), paired, target, note))

    def absolute(label, sel, fig, limit_kib, note=""):
        vals = by_rep(runs_of(*sel), fig)
        if not vals:
            return
        v = list(vals.values())
        rows.append((label, f"{statistics.median(v) / 1024:.1f} MiB", f"max {max(v) / 1024:.1f} MiB",
                     None, v, ("<=", limit_kib), note))

    def usage_set(label, sel):
        """The MemoryFile's own usage set: segments and bytes per segment."""
        runs = runs_of(*sel)
        segs = [int(r["usage_set_segments_restored"]) for r in runs if "usage_set_segments_restored" in r]
        bts = [int(r["usage_set_bytes_restored"]) for r in runs if "usage_set_bytes_restored" in r]
        if segs and bts:
            rows.append((label, f"{max(segs):,} segs", f"{max(bts) / MIB:.1f} MiB", None, None,
                         ("info", f"{max(bts) / max(segs):.0f} B/segment"), ""))

    for cold in (False, True):
        c = " (cold)" if cold else ""
        if not cold:
            ratio("W-churn ns/op, ours / gVisor", ("ours", "W-churn", "topdown"), ("gvisor", "W-churn", "topdown"),
                  "ns_per_op", target=("<=", 0.5))
            ratio("W-churn final file size, ours / gVisor", ("ours", "W-churn", "topdown"),
                  ("gvisor", "W-churn", "topdown"), "file_size", target=("<=", 1.0))
            ratio("W-frag ns/alloc, ours / gVisor", ("ours", "W-frag", "topdown"), ("gvisor", "W-frag", "topdown"),
                  "ns_per_op", target=("<=", 0.5))
        for size in ("dense", "dense-4g", "dense-16g", "default"):
            ours = ("ours", "W-save", "pgsnap", size, cold)
            zmem = ("baseline", "W-save", "zstd1T2-memfd", size, cold)
            cpz = ("baseline", "W-save", "cp-sparse+zstd1T2", size, cold)
            gsf = ("gvisor", "W-save", "statefile", size, cold)
            graw = ("gvisor", "W-save", "raw", size, cold)
            dense = size.startswith("dense")
            if not cold:
                ratio(f"W-save {size} save, ours / zstd -1 -T2 from memfd", ours, zmem, "save_s",
                      target=("<=", 0.67) if dense else None)
                ratio(f"W-save {size} save, ours / cp --sparse + zstd -1 -T2", ours, cpz, "save_s")
                ratio(f"W-save {size} save, ours / gVisor statefile", ours, gsf, "save_s",
                      target=("<=", 0.15) if dense else None)
                ratio(f"W-save {size} save, ours / gVisor raw", ours, graw, "save_s")
                # Leaving the committed zero pages committed, where the
                # default decommits them as gVisor's save does
                # (pgallocbench --keep-zero-pages).
                ours_keep = ("ours", "W-save", "pgsnap-keep-zero", size, cold)
                ratio(f"W-save {size} save --keep-zero-pages, ours / zstd -1 -T2 from memfd", ours_keep, zmem, "save_s")
                ratio(f"W-save {size} save --keep-zero-pages, ours / ours default", ours_keep, ours, "save_s")
            ratio(f"W-save {size} restore{c}, ours / zstd -dc | cp --sparse", ours, zmem, "restore_s",
                  target=("<=", 0.6) if dense and not cold else None)
            ratio(f"W-save {size} restore{c}, ours / gVisor statefile", ours, gsf, "restore_s",
                  target=("<=", 0.3) if dense and not cold else None)
            ratio(f"W-save {size} restore{c}, ours / gVisor raw", ours, graw, "restore_s")
            if not cold:
                ratio(f"W-save {size} checkpoint bytes, ours / zstd -1", ours, zmem, "ckpt_bytes",
                      target=("<=", 1.0))
                ratio(f"W-save {size} restored committed bytes, ours / zstd -dc | cp --sparse", ours, zmem,
                      "restored_committed_bytes")
            # What save and restore add to the process's anonymous memory,
            # the MemoryFile's usage set apart (reported on its own).
            absolute(f"W-save {size} RssAnon added by save{c}", ours, "added_rss_anon_save_kib", 64 * 1024)
            absolute(f"W-save {size} RssAnon added by restore{c}", ours, "added_rss_anon_restore_kib", 64 * 1024)
            usage_set(f"W-save {size} usage set of the restored file{c}", ours)
        if not cold:
            ratio("W-save save per GiB, ours 16 GiB / ours 1 GiB", ("ours", "W-save", "pgsnap", "dense-16g", False),
                  ("ours", "W-save", "pgsnap", "dense", False), "save_s", target=("<=", 1.2), scale=16.0)
            ratio("W-save save per GiB, zstd -1 -T2 16 GiB / 1 GiB", ("baseline", "W-save", "zstd1T2-memfd", "dense-16g", False),
                  ("baseline", "W-save", "zstd1T2-memfd", "dense", False), "save_s", scale=16.0)
        ratio(f"W-save save{c}, ours default / ours dense", ("ours", "W-save", "pgsnap", "default", cold),
              ("ours", "W-save", "pgsnap", "dense", cold), "save_s", target=None if cold else ("<=", 1.2))

    print("== Ratios: ratio of the medians; per-rep = the same ratio within each rep, median [min .. max]\n")
    w = max([len(r[0]) for r in rows] + [10])
    print(f"{'figure':{w}}  {'ours':>14}  {'peer':>14}  {'ratio':>7}  {'per-rep ratio':>22}  {'target':>8}  met")
    for label, a, b, rat, paired, target, note in rows:
        if rat is None and target and target[0] == "info":
            print(f"{label:{w}}  {a:>14}  {b:>14}  {'':>7}  {target[1]:>22}")
            continue
        if rat is None:  # absolute figure (RssAnon)
            op, lim = target
            worst = max(paired)
            met = "yes" if worst <= lim else "NO"
            print(f"{label:{w}}  {a:>14}  {b:>14}  {'':>7}  {'':>22}  {f'<= {lim // 1024} MiB':>8}  {met} (max of reps)")
            continue
        if paired:
            pr = f"{statistics.median(paired):.3f} [{min(paired):.3f}..{max(paired):.3f}]"
        else:
            pr = "-"
        if target:
            op, lim = target
            met = "yes" if (rat <= lim if op == "<=" else rat < lim) else "NO"
            ttext = f"{op} {lim:g}"
        else:
            met, ttext = "", ""
        print(f"{label:{w}}  {a:>14}  {b:>14}  {rat:7.3f}  {pr:>22}  {ttext:>8}  {met}")
    if errors:
        print(f"\n{len(errors)} run(s) FAILED; see above")
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
