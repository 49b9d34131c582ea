#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Checkpoint
import PGAlloc
import Workloads

/// `pgsnap demo`: the W-save workload end to end.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the W-save workload end to end and print what it measured.",
        discussion: """
            Fills a new MemoryFile with the W-save workload (--allocated bytes in \
            64 MiB ranges, every stride-th page written so that --touched bytes are \
            written), saves it to a checkpoint, inspects and verifies the \
            checkpoint, restores it into a new MemoryFile and checks every byte. \
            Then restores it lazily (the MemoryFile usable before any frame is \
            decompressed) and times the first use; rewrites 1% of the written pages \
            and saves incrementally against the first checkpoint, restores the \
            chain and checks every byte. Then writes a smaller W-save raw image (256 MiB, 64 MiB written), saves \
            and restores it as pgsnap save and restore do, and compares the bytes; \
            prints its apparent and allocated sizes. Exits 70 if any byte differs.
            """)

    @Option(
        help: ArgumentHelp("Bytes the MemoryFile allocates: a multiple of 64MiB. (default: 2GiB)", valueName: "size"),
        transform: ByteSize.parse)
    var allocated = ByteSize(2 << 30)

    @Option(
        help: ArgumentHelp("Bytes written into it: a multiple of 4KiB that divides --allocated. (default: 512MiB)", valueName: "size"),
        transform: ByteSize.parse)
    var touched = ByteSize(512 << 20)

    @Option(help: ArgumentHelp("Directory for the files (default: a new directory under /tmp).", valueName: "dir"))
    var directory: String?

    @Flag(help: "Keep the files instead of removing them at the end.")
    var keep = false

    func validate() throws {
        let a = allocated.bytes
        let t = touched.bytes
        guard a >= WSave.rangeBytes, a % WSave.rangeBytes == 0 else {
            throw ValidationError("--allocated \(allocated) must be a positive multiple of 64MiB")
        }
        guard t >= 4096, t % 4096 == 0, t <= a, a % t == 0 else {
            throw ValidationError("--touched \(touched) must be a multiple of 4KiB that divides --allocated \(allocated)")
        }
        // The workload writes at least the first page of every range.
        guard a / t <= WSave.pagesPerRange else {
            throw ValidationError("--touched \(touched) must be at least 4KiB per 64MiB of --allocated \(allocated)")
        }
        // The written pages live in memory twice (source and restored).
        let memory = UInt64(sysconf(Int32(_SC_PHYS_PAGES))) * UInt64(sysconf(Int32(_SC_PAGESIZE)))
        guard t <= memory / 3 else {
            throw ValidationError("--touched \(touched) needs about twice that much memory; this machine has \(humanBytes(memory))")
        }
    }

    func run() throws {
        let layout = WSave.Layout(allocated: allocated.bytes, touched: touched.bytes)
        let workspace = try perform(Subject("demo")) { try DemoWorkspace(directory: directory) }
        defer {
            if !keep {
                workspace.remove()
            }
        }
        let written = layout.writtenBytes
        let stride = layout.stride
        print("pgsnap demo: W-save, \(humanBytes(layout.allocated)) allocated, \(humanBytes(written)) written "
            + "(every \(stride == 1 ? "" : "\(stride)\(ordinalSuffix(stride)) ")page), in \(workspace.directory)")
        print("")

        let memory = try memoryFileRoundTrip(layout, written: written, workspace: workspace)
        print("")
        let image = try rawImageRoundTrip(workspace: workspace)
        if keep {
            print("")
            print("files kept in \(workspace.directory)")
        }
        if memory.badPages > 0 || !image.identical {
            throw CommandFailure(
                "demo", Failure("\(memory.badPages) page(s) of the restored MemoryFile differ, raw image \(image.identical ? "identical" : "differs")"),
                status: ExitStatus.software)
        }
    }

    // MARK: MemoryFile

    struct MemoryResult {
        var badPages: Int
    }

    /// Fills, saves, inspects, verifies, restores and checks a MemoryFile;
    /// prints the table.
    private func memoryFileRoundTrip(_ layout: WSave.Layout, written: UInt64, workspace: DemoWorkspace) throws -> MemoryResult {
        let path = workspace.file("wsave.pgsnap")
        let source = try perform(Subject("demo: fill a MemoryFile")) { try MemoryFile() }
        defer { source.destroy() }
        let ranges = try perform(Subject("demo: fill a MemoryFile")) { () throws -> [FileRange] in
            let ranges = try WSave.populate(source, layout)
            try source.updateUsage()
            return ranges
        }
        let committedBefore = try perform(Subject("demo: usage")) { try source.totalUsage() }

        var options = SaveOptions()
        let saveDisplay = ProgressDisplay.make("saving", quiet: false)
        options.progress = saveDisplay?.callback
        var started = ContinuousClock.now
        let report = try perform(Subject("demo: save to \(path)")) {
            defer { saveDisplay?.finish() }
            return try source.save(to: .path(path), options: options)
        }
        let saveSeconds = seconds(started.duration(to: .now))

        let subject = Subject("demo: read \(path)", checkpoint: path)
        let metadata = try perform(subject) { try CheckpointReader.readMetadata(from: .path(path)) }
        let verifyDisplay = ProgressDisplay.make("verifying", quiet: false)
        let verified = try perform(subject) {
            defer { verifyDisplay?.finish() }
            var options = RestoreOptions()
            options.progress = verifyDisplay?.callback
            return try CheckpointReader.verify(.path(path), options: options)
        }

        var restoreOptions = RestoreOptions()
        let restoreDisplay = ProgressDisplay.make("restoring", quiet: false)
        restoreOptions.progress = restoreDisplay?.callback
        started = ContinuousClock.now
        let restored = try perform(subject) {
            defer { restoreDisplay?.finish() }
            return try MemoryFile.restore(from: .path(path), options: restoreOptions)
        }
        let restoreSeconds = seconds(started.duration(to: .now))
        defer { restored.destroy() }

        let (bad, committedAfter) = try perform(Subject("demo: check the restored MemoryFile")) { () throws -> (Int, UInt64) in
            (try WSave.verify(fd: restored.fileDescriptor, ranges: ranges, layout), try restored.totalUsage())
        }
        let accounting = restored.accounting.snapshot()

        print("MemoryFile -> checkpoint -> MemoryFile")
        table([
            ("bytes written (touched)", exact(written)),
            ("checkpoint bytes", exact(report.checkpointBytes)),
            ("ratio", "\(fixed(ratio(written, report.checkpointBytes), digits: 2)) (bytes written / checkpoint bytes)"),
            ("save", "\(fixed(saveSeconds, digits: 2)) s, \(gigabytesPerSecond(written, saveSeconds)) of written data"),
            ("restore", "\(fixed(restoreSeconds, digits: 2)) s, \(gigabytesPerSecond(written, restoreSeconds)) of written data"),
            ("committed before (source)", exact(committedBefore)),
            ("committed after (restored)", "\(exact(committedAfter)); all-zero pages are not stored"),
            ("stored", "\(humanBytes(metadata.totals.storedBytes)) in \(metadata.totals.frameCount) frames, \(metadata.header.segmentCount) segment(s)"),
            ("verify", "OK: \(verified.totals.frameCount) frames, \(verified.totals.storedBytes) bytes stored"),
            ("pages that differ", "\(bad)"),
        ])
        print("  accounting of the restored file:")
        for kind in MemoryKind.allCases {
            print("    " + rightPad(kind.description, 12) + leftPad(humanBytes(accounting[kind]), 12))
        }
        print("")
        let lazyBad = try lazyRestore(path, ranges: ranges, layout, eagerSeconds: restoreSeconds)
        print("")
        let childBad = try incrementalSave(
            source, parent: path, parentReport: report, parentSeconds: saveSeconds, ranges: ranges, layout, workspace: workspace)
        return MemoryResult(badPages: bad + lazyBad + childBad)
    }

    /// Restores the checkpoint lazily, times when the file is usable and
    /// when its first page is read, waits for the whole load and checks it.
    private func lazyRestore(_ path: String, ranges: [FileRange], _ layout: WSave.Layout, eagerSeconds: Double) throws -> Int {
        let subject = Subject("demo: lazy restore of \(path)", checkpoint: path)
        var options = RestoreOptions()
        var lazy = LazyRestoreOptions()
        // Where userfaultfd is missing, the API still waits for frames.
        lazy.withoutUserfaultfd = .apiOnly
        options.mode = .lazy(lazy)
        let started = ContinuousClock.now
        let file = try perform(subject) { try MemoryFile.restore(from: .path(path), options: options) }
        defer { file.destroy() }
        let usable = seconds(started.duration(to: .now))
        // The first page of the last range: its frame is loaded first.
        let page = FileRange(start: ranges.last!.start, end: ranges.last!.start + 4096)
        var first: UInt8 = 0
        try perform(subject) { try file.forEachMappedSlice(page) { first = $0.load(as: UInt8.self) } }
        let firstUse = seconds(started.duration(to: .now))
        try perform(subject) { try file.waitUntilLoaded() }
        let loaded = seconds(started.duration(to: .now))
        let bad = try perform(Subject("demo: check the lazily restored MemoryFile")) {
            try WSave.verify(fd: file.fileDescriptor, ranges: ranges, layout)
        }
        _ = first
        print("lazy restore: the MemoryFile is returned before any frame is decompressed")
        table([
            ("usable after", "\(milliseconds(usable)) (eager restore: \(fixed(eagerSeconds, digits: 2)) s)"),
            ("first page read after", "\(milliseconds(firstUse)) (its frame loaded first, on demand)"),
            ("fully loaded after", "\(fixed(loaded, digits: 2)) s, in the background"),
            ("pages that differ", "\(bad)"),
        ])
        return bad
    }

    /// Rewrites 1% of the written pages, saves against `parent`, restores
    /// the chain and checks it.
    private func incrementalSave(
        _ source: MemoryFile, parent: String, parentReport: SaveReport, parentSeconds: Double, ranges: [FileRange], _ layout: WSave.Layout,
        workspace: DemoWorkspace
    ) throws -> Int {
        let child = workspace.file("wsave.child.pgsnap")
        let seed: UInt64 = 0x1E57
        let rewritten = try perform(Subject("demo: rewrite 1% of the pages")) {
            try WSave.rewrite(source, ranges: ranges, layout, share: 0.01, seed: seed)
        }
        var started = ContinuousClock.now
        let report = try perform(Subject("demo: save \(child) against \(parent)")) { try source.save(to: .path(child), parent: .path(parent)) }
        let saveSeconds = seconds(started.duration(to: .now))
        started = ContinuousClock.now
        let restored = try perform(Subject("demo: restore \(child)", checkpoint: child)) { try MemoryFile.restore(from: .path(child)) }
        defer { restored.destroy() }
        let restoreSeconds = seconds(started.duration(to: .now))
        let bad = try perform(Subject("demo: check the restored chain")) {
            try WSave.verify(fd: restored.fileDescriptor, ranges: ranges, layout, rewritten: (Set(rewritten), seed))
        }
        print("incremental save: \(rewritten.count) pages (1% of the written ones) rewritten with random bytes, saved against the first checkpoint")
        table([
            ("child checkpoint bytes", "\(exact(report.checkpointBytes)), \(fixed(100 * ratio(report.checkpointBytes, parentReport.checkpointBytes), digits: 1))% of the full checkpoint"),
            ("stored", "\(humanBytes(report.storedBytes)) (the rewritten pages: \(humanBytes(UInt64(rewritten.count) * 4096)))"),
            ("taken from the parent", humanBytes(report.referencedBytes)),
            ("save", "\(fixed(saveSeconds, digits: 2)) s (full save: \(fixed(parentSeconds, digits: 2)) s)"),
            ("restore of the chain", "\(fixed(restoreSeconds, digits: 2)) s"),
            ("pages that differ", "\(bad)"),
        ])
        return bad
    }

    // MARK: Raw image

    struct ImageResult {
        var identical: Bool
    }

    /// Writes a W-save image, saves and restores it as `pgsnap save` and
    /// `pgsnap restore` do, and compares; prints the table.
    private func rawImageRoundTrip(workspace: DemoWorkspace) throws -> ImageResult {
        let layout = WSave.Layout(allocated: 256 << 20, touched: 64 << 20)
        let imagePath = workspace.file("wsave.img")
        let checkpointPath = workspace.file("wsave.img.pgsnap")
        let restoredPath = workspace.file("wsave.restored.img")

        try perform(Subject("demo: write \(imagePath)")) {
            let fd = try OwnedFileDescriptor.open(imagePath, flags: O_RDWR | O_CREAT | O_TRUNC, mode: 0o600)
            try WSave.writeImage(fd: fd.rawValue, layout)
        }
        let report = try perform(Subject("demo: save \(imagePath) to \(checkpointPath)")) {
            try RawImage.save(source: imagePath, to: .path(checkpointPath))
        }
        _ = try perform(Subject("demo: restore \(checkpointPath) to \(restoredPath)", checkpoint: checkpointPath)) {
            try RawImage.restore(from: .path(checkpointPath), toImage: restoredPath)
        }
        let (before, after, identical) = try perform(Subject("demo: compare \(imagePath) and \(restoredPath)")) {
            () throws -> (stat, stat, Bool) in
            let a = try OwnedFileDescriptor.open(imagePath, flags: O_RDONLY)
            let b = try OwnedFileDescriptor.open(restoredPath, flags: O_RDONLY)
            return (try a.status(), try b.status(), try sameBytes(a, b))
        }

        print("raw image -> pgsnap save -> pgsnap restore")
        table([
            ("image", sizes(before)),
            ("checkpoint bytes", "\(exact(report.checkpointBytes)), \(humanBytes(report.storedBytes)) stored"),
            ("restored image", sizes(after)),
            ("identical bytes", identical ? "yes" : "NO"),
        ])
        return ImageResult(identical: identical)
    }

    /// Whether two files hold the same bytes (holes read as zeros).
    private func sameBytes(_ a: borrowing OwnedFileDescriptor, _ b: borrowing OwnedFileDescriptor) throws -> Bool {
        let chunk = 4 << 20
        let x = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        let y = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        defer {
            x.deallocate()
            y.deallocate()
        }
        var offset: UInt64 = 0
        while true {
            let n = try a.descriptor.readAll(into: x, atAbsoluteOffset: offset)
            let m = try b.descriptor.readAll(into: y, atAbsoluteOffset: offset)
            if n != m || memcmp(x.baseAddress!, y.baseAddress!, n) != 0 {
                return false
            }
            if n < chunk {
                return true
            }
            offset += UInt64(n)
        }
    }

    // MARK: Printing

    private func table(_ rows: [(String, String)]) {
        for (label, value) in rows {
            print("  " + rightPad(label, 28) + value)
        }
    }

    private func gigabytesPerSecond(_ bytes: UInt64, _ seconds: Double) -> String {
        seconds > 0 ? "\(fixed(Double(bytes) / seconds / 1e9, digits: 2)) GB/s" : "-"
    }

    private func milliseconds(_ seconds: Double) -> String {
        "\(fixed(seconds * 1000, digits: 2)) ms"
    }

    private func exact(_ n: UInt64) -> String {
        "\(humanBytes(n)) (\(n) bytes)"
    }

    private func sizes(_ st: stat) -> String {
        let apparent = UInt64(st.st_size)
        let blocks = UInt64(st.st_blocks) * 512
        return "\(humanBytes(apparent)) apparent, \(humanBytes(blocks)) allocated (st_blocks * 512)"
    }

    private func ordinalSuffix(_ n: UInt64) -> String {
        if (11...13).contains(n % 100) { return "th" }
        switch n % 10 {
        case 1: return "st"
        case 2: return "nd"
        case 3: return "rd"
        default: return "th"
        }
    }
}

/// The demo's directory: a new one under /tmp, or the user's; knows the
/// files it made, to remove them.
final class DemoWorkspace {
    let directory: String
    private let created: Bool
    private var files: [String] = []

    init(directory: String?) throws {
        if let directory {
            var st = stat()
            if stat(directory, &st) == 0 {
                guard st.st_mode & S_IFMT == S_IFDIR else {
                    throw HostError("demo directory \(directory)", errno: ENOTDIR)
                }
                created = false
            } else {
                _ = try retryingInterrupts("mkdir \(directory)") { mkdir(directory, 0o700) }
                created = true
            }
            self.directory = directory
        } else {
            var template = Array("/tmp/pgsnap-demo-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else {
                throw HostError("mkdtemp /tmp/pgsnap-demo-XXXXXX", errno: errno)
            }
            self.directory = String(cString: made)
            created = true
        }
    }

    /// The path of a file of the demo, to be removed at the end.
    func file(_ name: String) -> String {
        let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
        files.append(path)
        return path
    }

    /// Removes the demo's files, and the directory if the demo made it.
    func remove() {
        for f in files {
            unlink(f)
        }
        if created {
            rmdir(directory)
        }
    }
}
