// lazybench: lazy restores and serve-uffd measured against eager restores
// and against a raw-image userfaultfd handler, on the W-save workload of
// shared/bench/WORKLOADS.md. One line per figure, tab-separated key=value.
//
//   lazybench open   -A 1GiB -T 1GiB [--frame-size SIZE] [--reps N] [--dir DIR]
//       time to a usable MemoryFile (lazy) against a whole eager restore,
//       and the background load's time with 1 to 4 loader threads
//   lazybench touch  -A 1GiB -T 1GiB [--frame-size SIZE] [--touches N]
//       latency of touches of random pages through the mapping while the
//       background load runs (and, --no-background, with nothing loaded
//       but what is touched)
//   lazybench workingset -A 1GiB -T 1GiB [--frame-size SIZE] [--share 0.1]
//       time until a working set (a share of the frames' pages) has been
//       touched: eager restore then touch, lazy without a prefetch order,
//       lazy with the order recorded by a previous run
//   lazybench uffd   -A 1GiB -T 1GiB --pgsnap PATH [--frame-size SIZE]
//   open and touch take --protect none|signed|encrypted|signed-encrypted
//   (the test keys of fixtures/keys; restores read with the keys that open
//   and trust the checkpoint)
//       a Firecracker-style VMM reading all its memory through
//       `pgsnap serve-uffd` and through a raw-image handler

#if canImport(Glibc)
import Glibc
#endif
import CLinuxShim
import BenchProtection
import Checkpoint
import PGAlloc
import Synchronization
import Workloads

func die(_ message: String) -> Never {
    let line = Array("lazybench: \(message)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(2)
}

/// `value`, or the end of the run with `message`.
func need<T>(_ value: T?, _ message: String) -> T {
    guard let value else { die(message) }
    return value
}

func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ call: String) { description = "\(call): errno \(errno)" }
}
func seconds(_ from: UInt64, _ to: UInt64 = now()) -> Double { Double(to - from) / 1e9 }

struct Options {
    var mode = ""
    var allocated: UInt64 = 1 << 30
    var touched: UInt64 = 1 << 30
    var frameSize = 8 << 20
    var reps = 5
    var dir = "/dev/shm"
    var touches = 10_000
    var background = true
    var share = 0.1
    var pgsnap = ""
    var loaders = [1, 2, 3, 4]
    var protection = Protection.none

    init(_ args: [String]) {
        guard let first = args.first else { die("usage: lazybench open|touch|workingset|uffd [options]") }
        mode = first
        var i = 1
        func next() -> String {
            guard i < args.count else { die("\(args[i - 1]) needs a value") }
            defer { i += 1 }
            return args[i]
        }
        while i < args.count {
            let a = args[i]
            i += 1
            switch a {
            case "-A": allocated = need(parseBytes(next()), "bad -A")
            case "-T": touched = need(parseBytes(next()), "bad -T")
            case "--frame-size": frameSize = Int(need(parseBytes(next()), "bad --frame-size"))
            case "--reps": reps = need(Int(next()), "bad --reps")
            case "--dir": dir = next()
            case "--touches": touches = need(Int(next()), "bad --touches")
            case "--no-background": background = false
            case "--share": share = need(Double(next()), "bad --share")
            case "--pgsnap": pgsnap = next()
            case "--loaders": loaders = next().split(separator: ",").compactMap { Int($0) }
            case "--protect": protection = need(Protection(rawValue: next()), "bad --protect")
            default: die("unknown argument \(a)")
            }
        }
    }
}

func parseBytes(_ text: String) -> UInt64? {
    let digits = text.prefix { $0.isNumber }
    guard let n = UInt64(digits) else { return nil }
    switch text.dropFirst(digits.count).lowercased() {
    case "", "b": return n
    case "k", "kib": return n << 10
    case "m", "mib": return n << 20
    case "g", "gib": return n << 30
    default: return nil
    }
}

func report(_ fields: [(String, String)]) {
    print(fields.map { "\($0.0)=\($0.1)" }.joined(separator: "\t"))
    fflush(nil)
}

/// Makes the W-save file, saves it; returns the checkpoint's path and the
/// save's seconds.
func makeCheckpoint(_ o: Options, name: String = "lazybench") throws -> (String, Double, UInt64) {
    let layout = WSave.Layout(allocated: o.allocated, touched: o.touched)
    let file = try MemoryFile()
    defer { file.destroy() }
    _ = try WSave.populate(file, layout)
    try file.updateUsage()
    var options = SaveOptions()
    options.frameSize = o.frameSize
    try o.protection.apply(to: &options)
    let path = "\(o.dir)/\(name)-\(getpid()).pgsnap"
    let start = now()
    let report = try file.save(to: .path(path), options: options)
    return (path, seconds(start), report.checkpointBytes)
}

func lazyOptions(loaders: Int = 2, background: Bool = true) -> RestoreOptions {
    var lazy = LazyRestoreOptions()
    lazy.loaderThreads = loaders
    if !background {
        // Frames load only when touched: what a first touch costs alone.
        lazy.recordAccessOrder = nil
    }
    var options = RestoreOptions()
    options.mode = .lazy(lazy)
    return options
}

/// `options` with the keys that open and trust a checkpoint protected as
/// `o.protection`.
func keyed(_ options: RestoreOptions, _ o: Options) throws -> RestoreOptions {
    var options = options
    try o.protection.apply(to: &options)
    return options
}

/// Pointers to every page of `file`'s chunks (raw access, as a VMM's).
func pagePointer(_ file: MemoryFile) throws -> (UInt64) -> UnsafeMutableRawPointer {
    let chunks = try file.withChunkMappings { $0.map { (UInt(bitPattern: $0.address), $0.offset, UInt64($0.length)) } }
    return { offset in
        let c = chunks.first { offset >= $0.1 && offset < $0.1 + $0.2 }!
        return UnsafeMutableRawPointer(bitPattern: c.0 + UInt(offset - c.1))!
    }
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p + 0.5))]
}

func fmt(_ x: Double, _ digits: Int = 6) -> String {
    guard x.isFinite else { return "NA" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let v = (x * scale).rounded() / scale
    var text = "\(v)"
    if text.contains("e") { return "\(x)" }
    let parts = text.split(separator: ".", omittingEmptySubsequences: false)
    let fraction = parts.count > 1 ? String(parts[1]) : ""
    if digits == 0 { return String(parts[0]) }
    text = String(parts[0]) + "." + fraction + String(repeating: "0", count: max(0, digits - fraction.count))
    return text
}

// MARK: Modes

func runOpen(_ o: Options) throws {
    let (path, saveSeconds, bytes) = try makeCheckpoint(o)
    defer { unlink(path) }
    report([
        ("mode", "save"), ("protect", o.protection.rawValue), ("A", "\(o.allocated)"), ("T", "\(o.touched)"), ("frame", "\(o.frameSize)"),
        ("save_s", fmt(saveSeconds)), ("ckpt_bytes", "\(bytes)"),
    ])
    for rep in 0..<o.reps {
        var t = now()
        let eager = try MemoryFile.restore(from: .path(path), options: keyed(RestoreOptions(), o))
        let eagerSeconds = seconds(t)
        eager.destroy()
        report([("mode", "eager"), ("rep", "\(rep)"), ("restore_s", fmt(eagerSeconds))])
        for loaders in o.loaders {
            t = now()
            let lazy = try MemoryFile.restore(from: .path(path), options: keyed(lazyOptions(loaders: loaders), o))
            let usable = seconds(t)
            try lazy.waitUntilLoaded()
            let loaded = seconds(t)
            lazy.destroy()
            report([("mode", "lazy"), ("rep", "\(rep)"), ("loaders", "\(loaders)"), ("usable_s", fmt(usable)), ("loaded_s", fmt(loaded))])
        }
    }
}

func runTouch(_ o: Options) throws {
    let (path, _, _) = try makeCheckpoint(o)
    defer { unlink(path) }
    let metadata = try CheckpointReader.readMetadata(from: .path(path), includeFrames: true, keys: keyed(RestoreOptions(), o).keys)
    let spans = metadata.index.map { ($0.firstAddress, $0.endAddress) }
    func frame(of page: UInt64) -> Int? {
        var lo = 0
        var hi = spans.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if spans[mid].1 <= page { lo = mid + 1 } else { hi = mid }
        }
        return lo < spans.count && spans[lo].0 <= page ? lo : nil
    }
    var rng = SplitMix64(seed: 42)
    var lazy = LazyRestoreOptions()
    if !o.background {
        lazy = LazyRestoreOptions()
    }
    var options = RestoreOptions()
    options.mode = .lazy(lazy)
    let start = now()
    let file = try MemoryFile.restore(from: .path(path), options: keyed(options, o))
    let usable = seconds(start)
    let pointer = try pagePointer(file)
    // Random pages among the allocated ones (every one written in the
    // dense layout). The usage set merges the W-save's adjacent 64 MiB
    // ranges into one segment: pages are drawn from the segments as they
    // are, not from the ranges the workload allocated.
    let ranges = metadata.segments.filter { $0.refs > 0 }.map(\.range)
    let allocatedPages = ranges.reduce(0) { $0 + $1.length / 4096 }
    var first: [Double] = []
    var all: [Double] = []
    var seen = Set<Int>()
    var sink: UInt64 = 0
    // Touches over 10 ms: which, where, how long.
    var slow: [(Int, UInt64, Double)] = []
    for _ in 0..<o.touches {
        var p = rng.next() % allocatedPages
        var address: UInt64 = 0
        for r in ranges {
            if p < r.length / 4096 {
                address = r.start + p * 4096
                break
            }
            p -= r.length / 4096
        }
        let t = now()
        sink &+= pointer(address).load(as: UInt64.self)
        let dt = seconds(t)
        if dt > 0.01 {
            slow.append((all.count, address, dt))
        }
        all.append(dt)
        if let f = frame(of: address), seen.insert(f).inserted {
            first.append(dt)
        }
    }
    let loadedAtEnd = file.loadProgress?.framesDone ?? metadata.index.count
    for (i, address, dt) in slow.prefix(10) {
        report([("mode", "slow-touch"), ("touch", "\(i)"), ("address", "\(address)"), ("frame", "\(frame(of: address).map { "\($0)" } ?? "none")"), ("ms", fmt(dt * 1e3, 3))])
    }
    file.destroy()
    first.sort()
    all.sort()
    report([
        ("mode", "touch"), ("protect", o.protection.rawValue), ("frame", "\(o.frameSize)"), ("background", "\(o.background)"), ("usable_s", fmt(usable)),
        ("touches", "\(all.count)"), ("p50_all_us", fmt(percentile(all, 0.5) * 1e6, 1)), ("p99_all_us", fmt(percentile(all, 0.99) * 1e6, 1)),
        ("first_touches", "\(first.count)"), ("p50_first_us", fmt(percentile(first, 0.5) * 1e6, 1)),
        ("p99_first_us", fmt(percentile(first, 0.99) * 1e6, 1)), ("max_first_us", fmt((first.last ?? 0) * 1e6, 1)),
        ("frames", "\(metadata.index.count)"), ("frames_loaded_at_end", "\(loadedAtEnd)"), ("sink", "\(sink & 1)"),
    ])
}

func runWorkingSet(_ o: Options) throws {
    let (path, _, _) = try makeCheckpoint(o)
    defer { unlink(path) }
    let metadata = try CheckpointReader.readMetadata(from: .path(path), includeFrames: true)
    // The working set: the pages of a share of the frames, chosen at random,
    // touched in a random order.
    var rng = SplitMix64(seed: 7)
    var frames = Array(0..<metadata.frames.count)
    for i in stride(from: frames.count - 1, to: 0, by: -1) {
        frames.swapAt(i, Int(rng.next() % UInt64(i + 1)))
    }
    let chosen = frames.prefix(max(1, Int(Double(frames.count) * o.share)))
    var pages: [UInt64] = []
    for f in chosen {
        for run in metadata.frames[f].runs {
            pages += stride(from: run.start, to: run.end, by: 4096)
        }
    }
    for i in stride(from: pages.count - 1, to: 0, by: -1) {
        pages.swapAt(i, Int(rng.next() % UInt64(i + 1)))
    }
    func touchAll(_ file: MemoryFile) throws -> UInt64 {
        let pointer = try pagePointer(file)
        var sink: UInt64 = 0
        for p in pages {
            sink &+= pointer(p).load(as: UInt64.self)
        }
        return sink
    }
    // A checkpoint with the order recorded: restore lazily, recording,
    // touch the working set, save.
    var recording = LazyRestoreOptions()
    recording.recordAccessOrder = AccessRecording(seconds: 60, frameShare: 1)
    var recordingOptions = RestoreOptions()
    recordingOptions.mode = .lazy(recording)
    let recorder = try MemoryFile.restore(from: .path(path), options: recordingOptions)
    // Every sum is reported: loads whose result went unused could be
    // optimized away, and with them the faults measured.
    var sums = try touchAll(recorder)
    try recorder.waitUntilLoaded()
    let ordered = path + ".ordered"
    var saveOptions = SaveOptions()
    saveOptions.frameSize = o.frameSize
    _ = try recorder.save(to: .path(ordered), options: saveOptions)
    recorder.destroy()
    defer { unlink(ordered) }
    let orderLength = try CheckpointReader.readMetadata(from: .path(ordered)).prefetchOrder.count

    for rep in 0..<o.reps {
        var t = now()
        let eager = try MemoryFile.restore(from: .path(path))
        sums &+= try touchAll(eager)
        let eagerSeconds = seconds(t)
        eager.destroy()
        t = now()
        let lazy = try MemoryFile.restore(from: .path(path), options: lazyOptions())
        sums &+= try touchAll(lazy)
        let lazySeconds = seconds(t)
        lazy.destroy()
        t = now()
        let prefetched = try MemoryFile.restore(from: .path(ordered), options: lazyOptions())
        sums &+= try touchAll(prefetched)
        let prefetchedSeconds = seconds(t)
        prefetched.destroy()
        report([
            ("mode", "workingset"), ("rep", "\(rep)"), ("share", fmt(o.share, 2)), ("pages", "\(pages.count)"),
            ("order_frames", "\(orderLength)"), ("eager_s", fmt(eagerSeconds)), ("lazy_s", fmt(lazySeconds)),
            ("lazy_prefetch_s", fmt(prefetchedSeconds)), ("sink", "\(sums & 1)"),
        ])
    }
}

// MARK: serve-uffd against a raw-image handler

/// Firecracker's example handler, in essence: every fault is answered with
/// UFFDIO_COPY of the page from the raw memory file, mapped.
final class RawImageHandler: @unchecked Sendable {
    let thread: HostThreadLike

    init(image: String, socketPath: String) throws {
        let fd = open(image, O_RDONLY)
        guard fd >= 0 else { throw BenchError("open \(image)") }
        var st = stat()
        fstat(fd, &st)
        let length = Int(st.st_size)
        let map = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0)!
        close(fd)
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketPath.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        unlink(socketPath)
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        listen(listener, 1)
        let mapAddress = UInt(bitPattern: map)
        thread = HostThreadLike {
            let connection = accept(listener, nil, nil)
            var buffer = [UInt8](repeating: 0, count: 65536)
            var uffd: Int32 = -1
            let n = buffer.withUnsafeMutableBytes { pg_recv_with_fd(connection, $0.baseAddress, $0.count, &uffd) }
            let text = String(decoding: buffer[0..<max(0, n)], as: UTF8.self)
            // The regions, from the JSON: base, size, offset.
            var regions: [(UInt64, UInt64, UInt64)] = []
            for object in text.split(separator: "}") {
                func field(_ name: String) -> UInt64? {
                    let key = "\"\(name)\":"
                    var rest = Substring(object)
                    while !rest.isEmpty {
                        if rest.hasPrefix(key) {
                            return UInt64(rest.dropFirst(key.count).prefix { $0.isNumber })
                        }
                        rest = rest.dropFirst()
                    }
                    return nil
                }
                if let b = field("base_host_virt_addr"), let s = field("size"), let o = field("offset") {
                    regions.append((b, s, o))
                }
            }
            var events = [pg_uffd_event](repeating: pg_uffd_event(), count: 64)
            var fds = [pollfd(fd: uffd, events: Int16(POLLIN), revents: 0), pollfd(fd: connection, events: Int16(POLLIN), revents: 0)]
            while true {
                _ = poll(&fds, 2, 200)
                if fds[1].revents != 0 {
                    var byte: UInt8 = 0
                    if recv(connection, &byte, 1, Int32(MSG_DONTWAIT)) == 0 { break }
                }
                let count = events.withUnsafeMutableBufferPointer { pg_uffd_read_events(uffd, $0.baseAddress, Int32($0.count)) }
                if count <= 0 { continue }
                for e in events.prefix(Int(count)) where e.event == pg_UFFD_EVENT_PAGEFAULT {
                    let page = e.address & ~UInt64(4095)
                    guard let r = regions.first(where: { page >= $0.0 && page < $0.0 + $0.1 }) else { continue }
                    let source = UnsafeRawPointer(bitPattern: mapAddress + UInt(r.2 + page - r.0))!
                    _ = pg_uffd_copy(uffd, page, source, 4096, nil)
                }
            }
            close(uffd)
            close(connection)
            close(listener)
        }
    }
}

/// A thread running a closure (the benchmark's own, not the library's).
final class HostThreadLike: @unchecked Sendable {
    private var thread = pthread_t()
    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    init(_ body: @escaping () -> Void) {
        let box = Unmanaged.passRetained(Box(body))
        pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, box.toOpaque())
    }

    func join() { pthread_join(thread, nil) }
}

/// Plays the VMM against the handler at `socketPath`: reads every page in
/// order; returns the seconds to the first page and to all.
func readAllThroughHandler(_ socketPath: String, size: Int) throws -> (Double, Double) {
    let client = try FirecrackerClient(regionSizes: [size])
    let start = now()
    try client.connect(to: socketPath)
    let base = client.regions[0].base
    var sink: UInt64 = base.load(as: UInt64.self)
    let first = seconds(start)
    for off in stride(from: 4096, to: size, by: 4096) {
        sink &+= base.load(fromByteOffset: off, as: UInt64.self)
    }
    let all = seconds(start)
    if sink == 42 { print("") }
    return (first, all)
}

func runUffd(_ o: Options) throws {
    guard !o.pgsnap.isEmpty else { die("uffd needs --pgsnap PATH (a release pgsnap)") }
    // The memory file: the W-save content as a raw image.
    let layout = WSave.Layout(allocated: o.allocated, touched: o.touched)
    let image = "\(o.dir)/lazybench-\(getpid()).img"
    let fd = open(image, O_RDWR | O_CREAT | O_TRUNC, 0o600)
    try WSave.writeImage(fd: fd, layout)
    close(fd)
    defer { unlink(image) }
    let checkpoint = image + ".pgsnap"
    var options = SaveOptions()
    options.frameSize = o.frameSize
    _ = try RawImage.save(source: image, to: .path(checkpoint), options: options)
    defer { unlink(checkpoint) }
    let size = Int(o.allocated)
    for rep in 0..<o.reps {
        // Raw image, served page by page.
        let rawSocket = "\(o.dir)/lazybench-raw-\(getpid()).sock"
        let raw = try RawImageHandler(image: image, socketPath: rawSocket)
        let (rawFirst, rawAll) = try readAllThroughHandler(rawSocket, size: size)
        // serve-uffd, in its own process.
        let socketPath = "\(o.dir)/lazybench-\(getpid()).sock"
        var pid: pid_t = 0
        let arguments = [o.pgsnap, "serve-uffd", checkpoint, "--socket", socketPath, "--quiet"]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        guard posix_spawn(&pid, o.pgsnap, nil, nil, &argv, environ) == 0 else { die("cannot run \(o.pgsnap)") }
        while access(socketPath, F_OK) != 0 {
            usleep(1000)
        }
        let (first, all) = try readAllThroughHandler(socketPath, size: size)
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        unlink(socketPath)
        _ = raw
        report([
            ("mode", "uffd"), ("rep", "\(rep)"), ("bytes", "\(size)"), ("raw_first_s", fmt(rawFirst)), ("raw_all_s", fmt(rawAll)),
            ("raw_pages_per_s", fmt(Double(size / 4096) / rawAll, 0)), ("serve_first_s", fmt(first)), ("serve_all_s", fmt(all)),
            ("serve_pages_per_s", fmt(Double(size / 4096) / all, 0)),
        ])
    }
}

let options = Options(Array(CommandLine.arguments.dropFirst()))
do {
    switch options.mode {
    case "open": try runOpen(options)
    case "touch": try runTouch(options)
    case "workingset": try runWorkingSet(options)
    case "uffd": try runUffd(options)
    default: die("unknown mode \(options.mode)")
    }
} catch {
    die("\(error)")
}
