// incbench: incremental checkpoints on the W-save workload of
// shared/bench/WORKLOADS.md, the figures of the issue "Incremental and
// deduplicated checkpoints". One line per figure, tab-separated key=value.
//
//   incbench -A 1GiB -T 1GiB [--dir DIR] [--reps N] [--chain 10]
//
// Each rep: W-save is written and saved in full; then 1% of the written
// pages get new random contents and are saved against the full checkpoint;
// then 10% (a superset of the 1%), again against the full checkpoint. Each
// child's size is set beside the zstd-compressed size of its changed pages
// alone (level 1, 8 MiB frames, as the save compresses), its save time
// beside the full save's. Then a chain of --chain links (1% changed each,
// different pages each time) is saved, restored eagerly and lazily, and
// set beside its flattened checkpoint. Last, the cost of SHA-256 per GiB
// of pages on one thread.
//
//   incbench ... --keep                 keeps the last rep's checkpoints
//   incbench --restore-only PATH|s3://BUCKET/KEY
//       restores one checkpoint eagerly, then lazily (usable, a first
//       touch of a middle page, loaded, and the RssAnon the lazy restore
//       adds until loaded, its usage set apart); with INCBENCH_LAZY_OPENS=N,
//       only opens it lazily N times and prints the median time to usable

#if canImport(Glibc)
import Glibc
#endif
import BenchMemory
import Checkpoint
import Crypto
import PGAlloc
import Workloads

func die(_ message: String) -> Never {
    let line = Array("incbench: \(message)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(2)
}

func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func seconds(_ from: UInt64, _ to: UInt64 = now()) -> Double { Double(to - from) / 1e9 }

func emit(_ fields: [(String, String)]) {
    print(fields.map { "\($0.0)=\($0.1)" }.joined(separator: "\t"))
    fflush(nil)
}

/// `x` with six decimals (in microseconds for times in seconds).
func f6(_ x: Double) -> String {
    guard x.isFinite else { return "NA" }
    let micro = Int64((x * 1e6).rounded())
    let sign = micro < 0 ? "-" : ""
    let whole = abs(micro) / 1_000_000
    let fraction = String(abs(micro) % 1_000_000)
    return sign + "\(whole)." + String(repeating: "0", count: 6 - fraction.count) + fraction
}

func parseSize(_ text: String) -> UInt64 {
    let units: [(String, UInt64)] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)]
    for (suffix, factor) in units where text.hasSuffix(suffix) {
        guard let n = UInt64(text.dropLast(suffix.count)) else { die("bad size \(text)") }
        return n * factor
    }
    guard let n = UInt64(text) else { die("bad size \(text)") }
    return n
}

/// The command line's settings.
struct Settings {
    var allocated: UInt64 = 1 << 30
    var touched: UInt64 = 1 << 30
    var dir = "/dev/shm"
    var reps = 3
    var chainLength = 10
    /// Keep the checkpoints of the last rep (in `dir`/incbench-PID).
    var keep = false
    /// Only restore this checkpoint (eagerly, then lazily), for profiling.
    var restoreOnly: String?

    init(_ arguments: ArraySlice<String>) {
        var args = arguments
        while let arg = args.popFirst() {
            func value() -> String {
                guard let v = args.popFirst() else { die("\(arg) needs a value") }
                return v
            }
            switch arg {
            case "-A": allocated = parseSize(value())
            case "-T": touched = parseSize(value())
            case "--dir": dir = value()
            case "--reps": reps = Int(value()) ?? 3
            case "--chain": chainLength = Int(value()) ?? 10
            case "--keep": keep = true
            case "--restore-only": restoreOnly = value()
            default: die("unknown argument \(arg)")
            }
        }
    }
}

let settings = Settings(CommandLine.arguments.dropFirst())
let dir = settings.dir
let chainLength = settings.chainLength
let layout = WSave.Layout(allocated: settings.allocated, touched: settings.touched)
let shape = "A=\(settings.allocated >> 20)MiB\tT=\(settings.touched >> 20)MiB"

/// The zstd level-1 size of `pages` of `file`, compressed in 8 MiB frames
/// as a save would: what the changed pages alone cost.
func compressedSize(of pages: [UInt64], in file: MemoryFile) throws -> UInt64 {
    let frame = 8 << 20
    var compressor = try ZstdCompressor(level: 1)
    let input = UnsafeMutableRawBufferPointer.allocate(byteCount: frame, alignment: 4096)
    let output = UnsafeMutableRawBufferPointer.allocate(byteCount: ZstdCompressor.compressBound(frame), alignment: 4096)
    defer {
        input.deallocate()
        output.deallocate()
    }
    var total: UInt64 = 0
    var filled = 0
    func flush() throws {
        if filled > 0 {
            total += UInt64(try compressor.compress(UnsafeRawBufferPointer(rebasing: input[..<filled]), into: output))
            filled = 0
        }
    }
    for p in pages {
        try file.forEachMappedSlice(FileRange(start: p, end: p + 4096)) { slice in
            (input.baseAddress! + filled).copyMemory(from: slice.baseAddress!, byteCount: 4096)
        }
        filled += 4096
        if filled == frame {
            try flush()
        }
    }
    try flush()
    return total
}

func fileBytes(_ path: String) -> UInt64 {
    var st = stat()
    return stat(path, &st) == 0 ? UInt64(st.st_size) : 0
}

func run(rep: Int) throws {
    let work = "\(dir)/incbench-\(getpid())"
    mkdir(work, 0o700)
    defer {
        if settings.keep && rep == settings.reps {
            emit([("what", "kept"), ("dir", work)])
        } else if let d = opendir(work) {
            while let e = readdir(d) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name != "." && name != ".." { unlink("\(work)/\(name)") }
            }
            closedir(d)
        }
        rmdir(work)
    }
    let file = try MemoryFile()
    defer { file.destroy() }
    let ranges = try WSave.populate(file, layout)
    try file.updateUsage()

    var t = now()
    let full = try file.save(to: .path("\(work)/full"))
    let fullSeconds = seconds(t)
    emit([("what", "full"), ("rep", "\(rep)"), ("shape", shape), ("save_s", f6(fullSeconds)), ("ckpt_bytes", "\(full.checkpointBytes)"),
          ("stored_bytes", "\(full.storedBytes)"), ("duplicate_bytes", "\(full.duplicateBytes)")])

    for (share, seed) in [(0.01, UInt64(1)), (0.10, UInt64(2))] {
        let changed = try WSave.rewrite(file, ranges: ranges, layout, share: share, seed: seed)
        let alone = try compressedSize(of: changed, in: file)
        let path = "\(work)/child-\(Int(share * 100))"
        t = now()
        let child = try file.save(to: .path(path), parent: .path("\(work)/full"))
        let s = seconds(t)
        emit([("what", "child"), ("rep", "\(rep)"), ("shape", shape), ("changed_share", "\(share)"), ("changed_pages", "\(changed.count)"),
              ("save_s", f6(s)), ("save_vs_full", f6(s / fullSeconds)), ("ckpt_bytes", "\(child.checkpointBytes)"),
              ("changed_compressed_bytes", "\(alone)"), ("bytes_vs_changed", f6(Double(child.checkpointBytes) / Double(max(alone, 1)))),
              ("stored_bytes", "\(child.storedBytes)"), ("referenced_bytes", "\(child.referencedBytes)")])
    }

    // A chain: each link 1% changed, different pages each time.
    var parent = "\(work)/full"
    for link in 1...chainLength {
        _ = try WSave.rewrite(file, ranges: ranges, layout, share: 0.01, seed: 100 + UInt64(link), phase: UInt64(link))
        let path = "\(work)/link\(link)"
        _ = try file.save(to: .path(path), parent: .path(parent))
        parent = path
    }
    let flat = "\(work)/flat"
    _ = try MemoryFile.flatten(.path(parent), to: .path(flat))
    var chainBytes: UInt64 = fileBytes("\(work)/full")
    for link in 1...chainLength { chainBytes += fileBytes("\(work)/link\(link)") }
    for (name, path) in [("chain", parent), ("flattened", flat)] {
        t = now()
        let restored = try MemoryFile.restore(from: .path(path))
        let eager = seconds(t)
        restored.destroy()
        var options = RestoreOptions()
        options.mode = .lazy(LazyRestoreOptions())
        t = now()
        let lazy = try MemoryFile.restore(from: .path(path), options: options)
        let usable = seconds(t)
        let page = FileRange(start: ranges[ranges.count / 2].start, end: ranges[ranges.count / 2].start + 4096)
        try lazy.forEachMappedSlice(page) { _ in }
        let firstTouch = seconds(t)
        try lazy.waitUntilLoaded()
        let loaded = seconds(t)
        lazy.destroy()
        emit([("what", name), ("rep", "\(rep)"), ("shape", shape), ("links", name == "chain" ? "\(chainLength + 1)" : "1"),
              ("restore_s", f6(eager)), ("lazy_usable_s", f6(usable)), ("lazy_first_touch_s", f6(firstTouch)), ("lazy_loaded_s", f6(loaded)),
              ("ckpt_bytes", name == "chain" ? "\(chainBytes)" : "\(fileBytes(flat))")])
    }
}

/// SHA-256 of 4 KiB pages on one thread: seconds per GiB.
func hashCost() {
    let pages = 65536
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: pages * 4096, alignment: 4096)
    defer { buffer.deallocate() }
    var g = SplitMix64(seed: 3)
    for i in 0..<(buffer.count / 8) {
        buffer.storeBytes(of: g.next(), toByteOffset: i * 8, as: UInt64.self)
    }
    var best = Double.infinity
    var sink: UInt8 = 0
    for _ in 0..<5 {
        let t = now()
        for p in 0..<pages {
            let d = SHA256.hash(data: UnsafeRawBufferPointer(rebasing: buffer[p * 4096..<(p + 1) * 4096]))
            sink ^= d.withUnsafeBytes { $0[0] }
        }
        best = min(best, seconds(t))
    }
    emit([("what", "sha256"), ("pages", "\(pages)"), ("s_per_gib", f6(best * Double(1 << 30) / Double(pages * 4096))), ("sink", "\(sink)")])
}

/// Restores `path` (a file or `s3://BUCKET/KEY`) eagerly and lazily (to a
/// usable file, a first touch of a middle page, then loaded).
func restoreOnly(_ path: String) throws {
    let location = try CheckpointLocation.parse(path)
    if let opens = Int(getenv("INCBENCH_LAZY_OPENS").map { String(cString: $0) } ?? "") {
        var options = RestoreOptions()
        options.mode = .lazy(LazyRestoreOptions())
        var times: [Double] = []
        for _ in 0..<opens {
            let t = now()
            let lazy = try MemoryFile.restore(from: location, options: options)
            times.append(seconds(t))
            lazy.destroy()
        }
        times.sort()
        emit([("what", "lazy-opens"), ("opens", "\(opens)"), ("usable_median_s", f6(times[times.count / 2])), ("usable_min_s", f6(times[0]))])
        return
    }
    // A stored page in the middle, known before the lazy restore starts.
    let metadata = try CheckpointReader.readMetadata(from: location, includeFrames: true)
    let middle = metadata.frames[metadata.frames.count / 2].runs[0].start
    var t = now()
    let restored = try MemoryFile.restore(from: location)
    let eager = seconds(t)
    restored.destroy()
    var options = RestoreOptions()
    options.mode = .lazy(LazyRestoreOptions())
    // What the lazy restore adds to anonymous memory until loaded, the
    // restored file's usage set apart.
    let sampler = RssSampler()
    let rssBefore = procStatusKiB("RssAnon")
    sampler.begin()
    t = now()
    let lazy = try MemoryFile.restore(from: location, options: options)
    let usable = seconds(t)
    let touchStart = now()
    try lazy.forEachMappedSlice(FileRange(start: middle, end: middle + 4096)) { _ in }
    let firstTouch = seconds(touchStart)
    try lazy.waitUntilLoaded()
    let loaded = seconds(t)
    let peak = sampler.end().peakKiB
    sampler.stop()
    let usageSet = lazy.usageSetFootprint
    lazy.destroy()
    emit([("what", "restore-only"), ("restore_s", f6(eager)), ("lazy_usable_s", f6(usable)), ("lazy_first_touch_s", f6(firstTouch)),
          ("lazy_loaded_s", f6(loaded)), ("lazy_added_rss_anon_kib", "\(peak - rssBefore - usageSet.bytes / 1024)"),
          ("lazy_usage_set_bytes", "\(usageSet.bytes)")])
}

do {
    if let path = settings.restoreOnly {
        try restoreOnly(path)
        exit(0)
    }
    hashCost()
    for rep in 1...settings.reps {
        try run(rep: rep)
    }
} catch {
    die("\(error)")
}
