// pgallocbench: this project's side of the reference workloads of
// shared/bench/WORKLOADS.md (W-churn, W-frag, W-save), printing one result
// line per run in the format of gVisor's harness `gvbench`
// (shared/bench/gvisor): tab-separated key=value, the same keys, NA where a
// figure does not apply. Compare the two in one run: Benchmarks/compare.sh.
//
//   pgallocbench --workload selftest
//   pgallocbench --workload churn [--dir topdown|bottomup] [--ops N]
//   pgallocbench --workload frag  [--dir topdown|bottomup] [--frag-n N] [--frag-m M]
//   pgallocbench --workload save -A 1GiB -T 1GiB [--ckpt-dir DIR] [--threads N]
//                [--level L] [--frame-size SIZE] [--protect none|signed|encrypted|signed-encrypted]
//                [--keep-zero-pages] [--cold] [--lazy] [--keep]

#if canImport(Glibc)
import Glibc
#endif
import BenchMemory
import BenchProtection
import PGAlloc
import Workloads

let usage = """
    usage: pgallocbench --workload selftest|churn|frag|save [options]
      --dir topdown|bottomup   allocation direction (churn, frag, save; default topdown)
      --ops N                  W-churn operations (default 1000000)
      --frag-n N --frag-m M    W-frag one-page ranges / timed two-page allocations (65536 / 10000)
      -A SIZE -T SIZE          W-save allocated / touched bytes (default 8GiB / 1GiB)
      --ckpt-dir DIR           W-save checkpoint directory (default /tmp; deleted unless --keep)
      --threads N              W-save save and restore threads (default: online CPUs)
      --level L                W-save zstd level (default: the library's, 1)
      --frame-size SIZE        W-save frame size (default: the library's, 8MiB)
      --protect P              W-save: none (default), signed, encrypted or signed-encrypted (the test keys of
                               fixtures/keys; restored with the signer trusted and the recipient's key)
      --keep-zero-pages        W-save: the save leaves the committed zero pages it finds committed
                               (SaveOptions.decommitZeroPages = false; by default they are decommitted,
                               as gVisor's save does)
      --cold                   W-save: posix_fadvise(DONTNEED) the fsync'd checkpoint before restore
      --lazy                   W-save: restore lazily (userfaultfd, two loader threads) and time it until every
                               frame is loaded
      --keep                   W-save: keep the checkpoint file
      --selftest-pages N       selftest: pages hashed (default 65536)
    Flags may be written with one or two dashes, and as --flag=value.
    """

struct Options {
    var workload = ""
    var direction = AllocationDirection.topDown
    var directionName = "topdown"
    var ops = 1_000_000
    var fragN = 65536
    var fragM = 10000
    var selftestPages: UInt64 = 65536
    var save = SaveParameters()

    init(_ arguments: [String]) {
        var args = arguments
        var index = 0
        func value(_ flag: String) -> String {
            guard index < args.count else {
                die("\(flag) needs a value\n\(usage)")
            }
            defer { index += 1 }
            return args[index]
        }
        func bytes(_ flag: String, _ text: String) -> UInt64 {
            guard let v = parseBytes(text) else {
                die("bad byte count for \(flag): \(text)")
            }
            return v
        }
        func int(_ flag: String, _ text: String) -> Int {
            guard let v = Int(text), v > 0 else {
                die("bad number for \(flag): \(text)")
            }
            return v
        }
        while index < args.count {
            var arg = args[index]
            index += 1
            if arg.hasPrefix("-"), let eq = arg.firstIndex(of: "=") {
                args.insert(String(arg[arg.index(after: eq)...]), at: index)
                arg = String(arg[..<eq])
            }
            let flag = arg.hasPrefix("--") ? String(arg.dropFirst(2)) : arg.hasPrefix("-") ? String(arg.dropFirst()) : arg
            switch flag {
            case "workload": workload = value(arg)
            case "dir":
                switch value(arg) {
                case "topdown", "down": (direction, directionName) = (.topDown, "topdown")
                case "bottomup", "up": (direction, directionName) = (.bottomUp, "bottomup")
                case let other: die("bad --dir \(other) (topdown|bottomup)")
                }
            case "ops": ops = int(arg, value(arg))
            case "frag-n": fragN = int(arg, value(arg))
            case "frag-m": fragM = int(arg, value(arg))
            case "A": save.allocated = bytes(arg, value(arg))
            case "T": save.touched = bytes(arg, value(arg))
            case "ckpt-dir": save.checkpointDirectory = value(arg)
            case "threads": save.threads = int(arg, value(arg))
            case "level":
                guard let l = Int32(value(arg)) else { die("bad --level") }
                save.level = l
            case "frame-size": save.frameSize = Int(bytes(arg, value(arg)))
            case "protect":
                guard let p = Protection(rawValue: value(arg)) else { die("bad --protect (none|signed|encrypted|signed-encrypted)") }
                save.protection = p
            case "keep-zero-pages": save.decommit = false
            case "cold": save.cold = true
            case "lazy": save.lazy = true
            case "keep": save.keep = true
            case "selftest-pages": selftestPages = UInt64(int(arg, value(arg)))
            case "h", "help":
                print(usage)
                exit(0)
            default:
                die("unknown argument \(arg)\n\(usage)")
            }
        }
    }
}

func runMain() {
    let o = Options(Array(CommandLine.arguments.dropFirst()))
    if SplitMix64.first(0) != 0xE220_A839_7B1D_CDAF {
        die("splitmix64 self-check failed: first(0) = \(hex16(SplitMix64.first(0)))")
    }
    var r = ResultLine()
    var ok = true
    do {
        switch o.workload {
        case "selftest":
            r.set("workload", "selftest")
            ok = runSelftest(&r, pages: o.selftestPages)
        case "churn", "W-churn":
            r.set("workload", "W-churn")
            r.set("variant", o.directionName)
            try runChurn(&r, direction: o.direction, ops: o.ops)
        case "frag", "W-frag":
            r.set("workload", "W-frag")
            r.set("variant", o.directionName)
            try runFrag(&r, direction: o.direction, n: o.fragN, m: o.fragM)
        case "save", "W-save":
            guard o.direction == .topDown else {
                die("W-save allocates top-down (WSave.populate); --dir bottomup is not supported")
            }
            r.set("workload", "W-save")
            r.set("variant", o.save.decommit ? "pgsnap" : "pgsnap-keep-zero")
            let sampler = RssSampler()
            defer { sampler.stop() }
            try runSave(&r, o.save, sampler: sampler)
        default:
            die("need --workload selftest|churn|frag|save\n\(usage)")
        }
    } catch {
        die("\(o.workload): \(error)")
    }
    r.set("peak_rss_kib", procStatusKiB("VmHWM"))
    r.set("rss_anon_end_kib", procStatusKiB("RssAnon"))
    print(r.text)
    if !ok {
        die("selftest failed")
    }
}

runMain()
