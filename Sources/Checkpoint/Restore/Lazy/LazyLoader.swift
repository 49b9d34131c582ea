#if canImport(Glibc)
import Glibc
#endif
import PGAlloc
import SystemPackage

/// Loads a checkpoint's frames in the background into a target (a lazily
/// restored MemoryFile, or a VMM's memory), and lets every access wait only
/// for the frames it needs.
///
/// Nothing of a frame is read before it is needed: the loader knows the
/// frames from the index alone (where each record lies, which addresses it
/// spans), so that opening costs the same whatever the data. A frame's
/// header (its runs, checked against the index and the segment table) is
/// read when the frame is loaded, or earlier when an access or a drop
/// needs to know which of its pages are stored.
///
/// Frames are loaded in the checkpoint's prefetch order (its `PREF`
/// section) when it has one, then in address order; a frame someone waits
/// for (an API call through `waitUntilLoaded(_:)`, a page fault through
/// the `FaultHandler`) goes first. A loader thread takes a frame, reads its
/// record, checks it, decompresses it and writes the pages still wanted;
/// then `markLoaded` (the MemoryFile's, under its state lock) makes them
/// known committed. Pages dropped meanwhile (freed or decommitted:
/// `drop(_:)`) are never written, and a drop waits for a frame being
/// written to finish, so that nothing lands on pages after they are handed
/// back.
///
/// Lock order: the MemoryFile's state lock (held by `decRef` and
/// `decommit` when they call `drop`, and by `markLoaded`), then this
/// loader's lock. The loader takes the MemoryFile's lock only through
/// `markLoaded`, never while a frame it writes is `.loading` (a drop may
/// wait for that under the state lock); the fault handler takes only this
/// loader's lock.
final class LazyLoader: PendingContents, @unchecked Sendable {
    enum FrameState {
        case pending
        /// A loader thread reads and writes it; drops wait.
        case loading
        /// Written, about to be marked loaded.
        case written
        case loaded
        case failed(any Error)
    }

    /// A unit of loading: one of the checkpoint's frames (its stored
    /// pages), or a frame of a link that gives referenced pages (`pieces`:
    /// where its pages go).
    struct Frame {
        /// For a unit of references: which frame of which link, and where
        /// its pages go.
        var references: ReferencePlan.Unit?
        /// The frame's header, once read, until the frame is loaded.
        var header: FrameHeader?
        /// Pages dropped before the header was read.
        var dropped: [FileRange] = []
        /// The stored pages still to write: the runs less what was dropped
        /// (once the header is read), until the frame is loaded.
        var wanted: [FileRange] = []
        var state = FrameState.pending
        /// Whether it is in the urgent queue already.
        var queued = false
        /// File offsets of pages a thread faulted on, to wake once the
        /// frame is written.
        var faulted: [UInt64] = []
        /// A unit of references that was loaded or failed, counted so.
        var ended = false

        /// The frame is loaded: it forgets its header and runs, which
        /// would otherwise grow a restore's memory with the checkpoint's
        /// size (a few KB a frame of scattered pages). A fault in a loaded
        /// frame is answered with a zero page, which the kernel refuses
        /// (EEXIST, and the thread is woken) where the page was written.
        mutating func markLoaded() {
            state = .loaded
            header = nil
            wanted = []
            dropped = []
        }

        var isLoaded: Bool {
            if case .loaded = state { return true }
            return false
        }
    }

    struct State {
        var frames: [Frame]
        /// Frames in the order to load them when nobody waits.
        var order: [Int]
        var orderCursor = 0
        /// Frames someone waits for, first come first served.
        var urgent: [Int] = []
        var urgentHead = 0
        var done = 0
        var failed = 0
        var bytesLoaded: UInt64 = 0
        var bytesTotal: UInt64
        var cancelled = false
        var loadersRunning: Int
        /// Frames in the order first needed, while recording.
        var accessOrder: [UInt64] = []
        var recordedFrames = Set<Int>()
        var recording: Bool
        /// Whether the fault handler was stopped and the file detached.
        var finished = false
        /// Whether frames nobody waits for are loaded too.
        var background: Bool
        /// The loader threads still to join: one that ends on its own (not
        /// cancelled) detaches itself and leaves this list.
        var threads: [Int: HostThread] = [:]
        /// Payloads read with their frame's header, not yet loaded.
        var keptPayloads: [Int: [UInt8]] = [:]
        /// Headers of the frames units take pages from, read so far (by
        /// `sourceKey`), while a unit that takes pages from them is left.
        var sourceHeaders: [Int: FrameHeader] = [:]
        /// Units not yet loaded or failed, by their source frame's key.
        var unitsLeft: [Int: Int] = [:]

        var isComplete: Bool { done + failed == frames.count }

        /// Frame `f` is loaded: it forgets its runs, and a unit of
        /// references its source frame's header once no other unit needs it.
        mutating func markLoaded(_ f: Int) {
            frames[f].markLoaded()
            unitEnded(f)
        }

        /// Frame `f`, if a unit of references, is loaded or failed.
        mutating func unitEnded(_ f: Int) {
            guard let unit = frames[f].references, !frames[f].ended else { return }
            frames[f].ended = true
            let key = LazyLoader.sourceKey(unit)
            let left = unitsLeft[key, default: 1] - 1
            if left > 0 {
                unitsLeft[key] = left
            } else {
                unitsLeft[key] = nil
                sourceHeaders[key] = nil
            }
        }
    }

    private let input: RandomAccessInput
    private let metadata: CheckpointMetadata
    /// The address window a unit of references gives pages in (see
    /// `ReferencePlan`): a wait for a referenced page writes at most this
    /// much, besides decompressing the frame that holds it.
    static let referenceWindow: UInt64 = 2 << 20

    /// The checkpoint's parents, for its references.
    private let chain: CheckpointChain?
    /// Units of references by destination: each piece's pages and its
    /// unit (counted from `firstReferenceUnit`), sorted by address.
    private let referenceMap: SpillArray<ReferencePlan.Destination>
    /// The first unit of references among `State.frames`.
    private let firstReferenceUnit: Int
    /// Payloads kept from header reads, at most: a few frames' worth of
    /// memory.
    static let keptPayloadLimit = 4

    /// The checkpoint's own frames come first among the units.
    private var ownFrames: Int { metadata.index.count }
    private var target: LoadTarget
    private let lock: StateLock<State>
    private let workAvailable: StateLock<State>.Condition
    private let frameFinished: StateLock<State>.Condition
    private var faults: FaultHandler?
    private let options: LazyRestoreOptions
    private let recordingDeadline: UInt64
    private let recordingFrameLimit: Int
    private let segments: SegmentLookup
    private let hooks: Hooks

    /// What the loader tells its owner.
    struct Hooks: Sendable {
        /// A frame's first page, as it is first needed, while recording.
        var access: @Sendable (UInt64) -> Void = { _ in }
        /// A frame is written: make `wanted()` (asked under the owner's
        /// lock) loaded, and return it.
        var markLoaded: @Sendable (_ wanted: () -> [FileRange]) -> [FileRange] = { $0() }
        /// Pages that were to load will not be (their frame failed).
        var lost: @Sendable ([FileRange]) -> Void = { _ in }
        /// Every frame is loaded or failed: with how many failed.
        var finished: @Sendable (LazyLoader, Int) -> Void = { _, _ in }
        /// Whether the fault handler stops once everything is loaded (a
        /// MemoryFile's: access is ordinary from then on) or goes on until
        /// `cancel()` (a VMM's: holes and removed pages still fault).
        var faultsEndWithLoading = true
    }

    /// A loader of the checkpoint read from `input` (`metadata`, read
    /// without frames), whose references to parents `chain` resolves.
    init(
        input: RandomAccessInput, metadata: CheckpointMetadata, chain: CheckpointChain?, target: LoadTarget, options: LazyRestoreOptions,
        hooks: Hooks
    ) throws {
        self.input = input
        self.metadata = metadata
        self.chain = chain
        self.target = target
        self.options = options
        self.hooks = hooks
        segments = SegmentLookup(metadata.segments)
        var frames = [Frame](repeating: Frame(), count: metadata.index.count)
        let plan = try ReferencePlan(references: metadata.references, window: Self.referenceWindow) { link in
            link == 0 ? metadata.index : chain!.link(link).metadata.index
        }
        // Reference units follow the checkpoint's frames.
        let firstUnit = frames.count
        var unitsLeft: [Int: Int] = [:]
        for unit in plan.units {
            var frame = Frame()
            frame.references = unit
            frames.append(frame)
            unitsLeft[Self.sourceKey(unit), default: 0] += 1
        }
        referenceMap = plan.destinations
        firstReferenceUnit = firstUnit
        // The stored order first, then every other frame by address, then
        // the references.
        var order = metadata.prefetchOrder.map { Int($0) }
        let named = Set(order)
        order += (0..<metadata.index.count).filter { !named.contains($0) }
        // Units by link and frame: a loader decompresses a frame once for
        // the units that follow each other.
        order += firstUnit..<frames.count
        lock = StateLock(State(
            frames: frames, order: order, bytesTotal: metadata.totals.storedBytes + metadata.referencedBytes,
            loadersRunning: max(1, options.loaderThreads), recording: options.recordAccessOrder != nil,
            background: options.backgroundLoading, unitsLeft: unitsLeft))
        workAvailable = lock.makeCondition()
        frameFinished = lock.makeCondition()
        let recording = options.recordAccessOrder ?? AccessRecording(seconds: 0, frameShare: 0)
        recordingDeadline = monotonicNanoseconds() + UInt64(max(0, recording.seconds) * 1e9)
        recordingFrameLimit = Int((Double(frames.count) * min(1, max(0, recording.frameShare))).rounded(.up))
    }

    /// Sets where frames are written, before `start`: a fault handler made
    /// after the loader (it needs the loader's classification).
    func retarget(_ target: LoadTarget) {
        self.target = target
    }

    /// The fault classification for a `FaultHandler`: what to do with a
    /// fault on the page at checkpoint address `offset`.
    var faultClassifier: @Sendable (UInt64) -> FaultHandler.FaultAction {
        { [unowned self] offset in self.classifyFault(offset) }
    }

    /// Starts the loader threads, with `faults` (if any) serving the page
    /// faults on the memory loaded into.
    func start(faults: FaultHandler?) throws {
        self.faults = faults
        if lock.withLock({ $0.frames.isEmpty }) {
            finish()
            return
        }
        // Started under the lock, so that a thread ending at once finds
        // itself in the list.
        try lock.withLock { s in
            for i in 0..<max(1, options.loaderThreads) {
                s.threads[i] = try HostThread(name: "pgsnap-loader") { [self] in
                    self.runLoader(i)
                }
            }
        }
    }

    // MARK: PendingContents

    /// Runs of pages the loader holds in its frames' headers and wanted
    /// lists and in the headers of units' source frames (for tests: loaded
    /// frames hold none).
    var heldRuns: Int {
        lock.withLock { s in
            s.frames.reduce(0) { $0 + ($1.header?.runs.count ?? 0) + $1.wanted.count }
                + s.sourceHeaders.values.reduce(0) { $0 + $1.runs.count }
        }
    }

    var progress: ContentLoadProgress {
        lock.withLock { s in
            ContentLoadProgress(
                framesDone: s.done, framesTotal: s.frames.count, bytesLoaded: s.bytesLoaded, bytesTotal: s.bytesTotal,
                framesFailed: s.failed)
        }
    }

    func waitUntilLoaded(_ range: FileRange) throws {
        let frames = framesSpanning(range)
        guard !frames.isEmpty else { return }
        // Which of the frames hold stored pages in the range: their headers
        // say, read now if need be.
        var needed: [Int] = []
        for f in frames {
            guard let (_, wanted) = try? knownRuns(f) else {
                // A header that cannot be read fails its frame: it is waited
                // for, and reports why.
                needed.append(f)
                continue
            }
            if wanted.contains(where: { $0.overlaps(range) }) {
                needed.append(f)
            }
        }
        guard !needed.isEmpty else { return }
        let failure: (any Error)? = lock.withLock(waitingOn: frameFinished) { s -> StateLock<State>.Step<(any Error)?> in
            var waiting = false
            for f in needed {
                switch s.frames[f].state {
                case .pending:
                    prioritize(&s, f, page: max(range.start, s.frames[f].wanted.first?.start ?? range.start))
                    waiting = true
                case .loading, .written:
                    waiting = true
                case .loaded:
                    break
                case .failed(let error):
                    if s.frames[f].header == nil || s.frames[f].wanted.contains(where: { $0.overlaps(range) }) {
                        return .done(error)
                    }
                }
            }
            if s.cancelled {
                return .done(nil)
            }
            return waiting ? .wait : .done(nil)
        }
        if let failure {
            throw failure
        }
    }

    func waitUntilLoaded() throws {
        lock.withLock { $0.background = true }
        lock.broadcast(workAvailable)
        let failure: (any Error)? = lock.withLock(waitingOn: frameFinished) { s -> StateLock<State>.Step<(any Error)?> in
            if s.isComplete || s.cancelled {
                for f in s.frames {
                    if case .failed(let e) = f.state { return .done(e) }
                }
                return .done(nil)
            }
            return .wait
        }
        if let failure {
            throw failure
        }
    }

    func drop(_ range: FileRange) -> [FileRange] {
        let frames = framesSpanning(range)
        guard !frames.isEmpty else { return [] }
        // The runs of each frame: which pages of the range were stored.
        for f in frames {
            _ = try? knownRuns(f)
        }
        lock.withLock(waitingOn: frameFinished) { s -> StateLock<State>.Step<Void> in
            // A frame being written must finish first: its pages cannot be
            // taken back from the kernel halfway.
            for f in frames {
                if case .loading = s.frames[f].state { return .wait }
            }
            return .done(())
        }
        var released: [FileRange] = []
        var clearPoison = false
        lock.withLock { s in
            for f in frames {
                if s.frames[f].isLoaded {
                    continue
                }
                if s.frames[f].header == nil {
                    // Unreadable so far: remembered, applied if it is read.
                    s.frames[f].dropped.append(range)
                    continue
                }
                let before = s.frames[f].wanted
                var after: [FileRange] = []
                var gone: [FileRange] = []
                for r in before {
                    after += r.subtracting(range)
                    let piece = r.intersection(range)
                    if !piece.isEmpty { gone.append(piece) }
                }
                guard !gone.isEmpty else { continue }
                s.frames[f].wanted = after
                let goneBytes = gone.reduce(0) { $0 + $1.length }
                switch s.frames[f].state {
                case .pending:
                    s.bytesTotal -= goneBytes
                    released += gone
                    if after.isEmpty {
                        s.markLoaded(f)
                        s.done += 1
                        s.keptPayloads[f] = nil
                    }
                case .written:
                    // Written, not yet marked: never will be, now.
                    s.bytesTotal -= goneBytes
                    s.bytesLoaded -= goneBytes
                    released += gone
                case .failed:
                    clearPoison = true
                case .loading, .loaded:
                    break
                }
            }
        }
        if clearPoison {
            faults?.clearPoison(range)
        }
        // The caller holds the MemoryFile's lock: finishing (which calls
        // into the file) is left to a loader thread.
        lock.broadcast(workAvailable)
        return released
    }

    func cancel() {
        let threads = lock.withLock { s in
            s.cancelled = true
            let t = s.threads
            s.threads = [:]
            return t
        }
        lock.broadcast(workAvailable)
        lock.broadcast(frameFinished)
        for t in threads.values {
            t.join()
        }
        stopFaultHandling()
    }

    // MARK: Frame headers

    /// The header and the still-wanted runs of frame `f`, reading and
    /// checking the header first if it was not read yet; no header and no
    /// runs once the frame is loaded.
    private func knownRuns(_ f: Int) throws -> (FrameHeader?, [FileRange]) {
        let already = lock.withLock { s -> (FrameHeader?, [FileRange])? in
            if s.frames[f].isLoaded {
                return (nil, [])
            }
            return s.frames[f].header.map { ($0, s.frames[f].wanted) }
        }
        if let already {
            return already
        }
        let header: FrameHeader
        var payload: [UInt8] = []
        let unit = lock.withLock { $0.frames[f].references }
        // Units of one frame (one per window) read its header once.
        let known = unit.flatMap { u in
            lock.withLock { s in s.sourceHeaders[Self.sourceKey(u)] ?? (u.link == 0 ? s.frames[u.frame].header : nil) }
        }
        do {
            if let known {
                header = known
            } else if let unit {
                let (linkInput, linkMetadata) = link(unit.link)
                (header, payload) = try readFrameRecord(unit.frame, from: linkInput, metadata: linkMetadata, segments: nil)
            } else {
                (header, payload) = try readFrameRecord(f, from: input, metadata: metadata, segments: segments)
            }
        } catch {
            fail(f, error)
            throw error
        }
        return lock.withLock { s in
            if let unit, s.unitsLeft[Self.sourceKey(unit)] != nil {
                s.sourceHeaders[Self.sourceKey(unit)] = header
            }
            if s.frames[f].isLoaded {
                // Loaded meanwhile (dropped whole by another thread).
                return (nil, [])
            }
            if s.frames[f].header == nil {
                s.frames[f].header = header
                // Read with the header: kept for the load that most often
                // follows, a few frames at most.
                if !payload.isEmpty && s.keptPayloads.count < Self.keptPayloadLimit {
                    s.keptPayloads[f] = payload
                }
                var wanted = unit.map { Self.destinations(of: $0) } ?? header.runs
                for d in s.frames[f].dropped {
                    wanted = wanted.flatMap { $0.subtracting(d) }
                }
                s.frames[f].dropped = []
                s.frames[f].wanted = wanted
            }
            return (s.frames[f].header!, s.frames[f].wanted)
        }
    }

    /// The key of a unit's frame among the parents' frames.
    private static func sourceKey(_ unit: ReferencePlan.Unit) -> Int {
        unit.link << 40 | unit.frame
    }

    /// The input and metadata of link `n` (0: this checkpoint).
    private func link(_ n: Int) -> (RandomAccessInput, CheckpointMetadata) {
        if n == 0 {
            return (input, metadata)
        }
        let l = chain!.link(n)
        return (l.input, l.metadata)
    }

    /// The pages a unit of references gives, sorted and joined.
    private static func destinations(of unit: ReferencePlan.Unit) -> [FileRange] {
        var out: [FileRange] = []
        for range in unit.pieces.map(\.destinationRange).sorted(by: { $0.start < $1.start }) {
            append(range, to: &out)
        }
        return out
    }

    // MARK: Recording and faults

    /// The units that may give pages of `range`: the units of references
    /// that do and, unless those give all of it (a referenced page is never
    /// stored), the checkpoint's frames whose span meets it.
    private func framesSpanning(_ range: FileRange) -> [Int] {
        var lo = 0
        var hi = referenceMap.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if referenceMap[mid].range.end <= range.start { lo = mid + 1 } else { hi = mid }
        }
        var units: [Int] = []
        var covered = range.start
        while lo < referenceMap.count && referenceMap[lo].range.start < range.end {
            if referenceMap[lo].range.start <= covered {
                covered = max(covered, referenceMap[lo].range.end)
            }
            let unit = firstReferenceUnit + referenceMap[lo].unit
            if !units.contains(unit) {
                units.append(unit)
            }
            lo += 1
        }
        if covered >= range.end {
            return units
        }
        return ownFramesSpanning(range) + units
    }

    /// The checkpoint's frames whose span meets `range`.
    private func ownFramesSpanning(_ range: FileRange) -> [Int] {
        let index = metadata.index
        // The first frame ending after range.start.
        var lo = 0
        var hi = index.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if index[mid].endAddress <= range.start { lo = mid + 1 } else { hi = mid }
        }
        var out: [Int] = []
        var i = lo
        while i < index.count && index[i].firstAddress < range.end {
            out.append(i)
            i += 1
        }
        return out
    }

    /// Puts frame `f` first in line (it is pending), and records it.
    private func prioritize(_ s: inout State, _ f: Int, page: UInt64) {
        guard !s.frames[f].queued else { return }
        s.frames[f].queued = true
        s.urgent.append(f)
        if s.recording {
            if monotonicNanoseconds() > recordingDeadline || s.recordedFrames.count >= recordingFrameLimit {
                s.recording = false
            } else if s.recordedFrames.insert(f).inserted {
                s.accessOrder.append(page)
                hooks.access(page)
            }
        }
        lock.signal(workAvailable)
    }

    /// What the fault handler does with a fault on the page at `offset`.
    private func classifyFault(_ offset: UInt64) -> FaultHandler.FaultAction {
        let page = FileRange(start: offset, end: offset + 4096)
        let candidates = framesSpanning(page)
        // The unit that gives the page, if any still does.
        var giver: Int?
        for c in candidates {
            guard let (_, wanted) = try? knownRuns(c) else { return .poison }
            if wanted.contains(where: { $0.overlaps(page) }) {
                giver = c
                break
            }
        }
        guard let f = giver ?? candidates.first else { return .zero }
        return lock.withLock { s in
            let wanted = s.frames[f].wanted.contains { $0.overlaps(page) }
            switch s.frames[f].state {
            case .pending where wanted:
                s.frames[f].faulted.append(offset)
                prioritize(&s, f, page: offset)
                return .wait
            case .loading where wanted, .written where wanted:
                s.frames[f].faulted.append(offset)
                return .wait
            case .failed where wanted:
                return .poison
            case .loaded:
                // Its pages were written (a zero page is refused there and
                // the thread woken), or dropped since.
                return .zero
            default:
                // Not a stored page (a hole inside the frame's span), or
                // one dropped: it holds no saved data.
                return .zero
            }
        }
    }

    // MARK: Loading

    private func runLoader(_ index: Int) {
        defer {
            // Ending on its own, the thread lets itself go; once cancelled,
            // `cancel()` joins it.
            lock.withLock { s in
                if !s.cancelled, let me = s.threads.removeValue(forKey: index) {
                    me.detach()
                }
            }
        }
        let context: DecodeContext
        let payload: PageBuffer
        do {
            let links = [metadata] + (chain?.links.map(\.metadata) ?? [])
            let frameLimit = links.map(\.header.frameLimit).max()!
            // Room for the largest stored payload of any link, sealed ones
            // included.
            let capacity = links.map {
                Int(CheckpointFormat.maxCompressedLength(frameLimit: $0.header.frameLimit))
                    + ($0.frameOpener?.sealOverhead(frameLimit: $0.header.frameLimit) ?? 0)
            }.max()!
            context = try DecodeContext(frameLimit: Int(frameLimit))
            payload = try PageBuffer(capacity: capacity)
        } catch {
            for f in 0..<lock.withLock({ $0.frames.count }) {
                fail(f, error)
            }
            return
        }
        // Which frame the context's scratch holds decompressed, if any:
        // consecutive units of one frame decompress it once.
        var scratchHolds: (link: Int, frame: Int)?
        while let f = nextFrame() {
            do {
                guard let header = try knownRuns(f).0 else { continue }
                // The wanted runs as they are once the frame is taken: a
                // drop from now on waits for the write.
                let wanted = lock.withLock { s -> [FileRange]? in
                    guard case .pending = s.frames[f].state else { return nil }
                    s.frames[f].state = .loading
                    return s.frames[f].wanted
                }
                guard let wanted else { continue }
                let unit = lock.withLock { $0.frames[f].references }
                let written = try load(
                    f, header, unit: unit, wanted: wanted, context: context, payload: payload, scratchHolds: &scratchHolds)
                complete(f, written: written)
            } catch {
                fail(f, error)
            }
        }
        lock.withLock { $0.loadersRunning -= 1 }
        finishIfComplete()
    }

    /// The next frame to load, waited-for ones first; nil when there is
    /// none left or the loader is cancelled.
    private func nextFrame() -> Int? {
        lock.withLock(waitingOn: workAvailable) { s -> StateLock<State>.Step<Int?> in
            if s.cancelled {
                return .done(nil)
            }
            while s.urgentHead < s.urgent.count {
                let f = s.urgent[s.urgentHead]
                s.urgentHead += 1
                if case .pending = s.frames[f].state {
                    return .done(f)
                }
            }
            s.urgent.removeAll(keepingCapacity: true)
            s.urgentHead = 0
            if !s.background {
                return s.isComplete ? .done(nil) : .wait
            }
            while s.orderCursor < s.order.count {
                let f = s.order[s.orderCursor]
                s.orderCursor += 1
                if case .pending = s.frames[f].state {
                    return .done(f)
                }
            }
            return .done(nil)
        }
    }

    /// Reads, checks and decompresses the frame, and writes the pages of
    /// `wanted`; returns the bytes written.
    private func load(
        _ f: Int, _ header: FrameHeader, unit: ReferencePlan.Unit?, wanted: [FileRange], context: DecodeContext, payload: PageBuffer,
        scratchHolds: inout (link: Int, frame: Int)?
    ) throws -> UInt64 {
        if let unit, let held = scratchHolds, held.link == unit.link, held.frame == unit.frame {
            lock.withLock { _ = $0.keptPayloads.removeValue(forKey: f) }
            let sink = PlacementSink(target: target, pieces: [unit.frame: unit.pieces], wanted: wanted)
            try sink.consume(header, data: UnsafeRawBufferPointer(rebasing: context.scratch[..<Int(header.uncompressedLength)]))
            return sink.bytesWritten
        }
        scratchHolds = nil
        let (frameInput, frameMetadata) = link(unit?.link ?? 0)
        let payloadOffset = frameMetadata.index[Int(header.sequence)].offset + UInt64(header.headerLength)
        let compressed = UnsafeMutableRawBufferPointer(rebasing: payload.bytes[..<Int(header.compressedLength)])
        if let kept = lock.withLock({ $0.keptPayloads.removeValue(forKey: f) }) {
            kept.withUnsafeBytes { compressed.copyMemory(from: $0) }
        } else {
            try frameInput.read(at: payloadOffset, into: compressed, section: .frame(header.sequence))
        }
        if let unit {
            let sink = PlacementSink(target: target, pieces: [unit.frame: unit.pieces], wanted: wanted)
            try decodeFrame(
                header, payload: compressed, payloadOffset: payloadOffset, context: context, sink: sink, opener: frameMetadata.frameOpener)
            scratchHolds = (unit.link, unit.frame)
            return sink.bytesWritten
        }
        let sink = WantedPagesSink(target: target, wanted: wanted)
        try decodeFrame(header, payload: compressed, payloadOffset: payloadOffset, context: context, sink: sink, opener: metadata.frameOpener)
        scratchHolds = (0, Int(header.sequence))
        return sink.written
    }

    /// Frame `f` is written: marks it loaded (through the owner, under its
    /// lock) and wakes whoever waits for it.
    private func complete(_ f: Int, written: UInt64) {
        lock.withLock { s in
            s.frames[f].state = .written
            s.bytesLoaded += written
        }
        lock.broadcast(frameFinished)
        _ = hooks.markLoaded {
            lock.withLock { s in
                let wanted = s.frames[f].wanted
                s.markLoaded(f)
                s.done += 1
                return wanted
            }
        }
        let faulted = lock.withLock { s in
            let faulted = s.frames[f].faulted
            s.frames[f].faulted = []
            return faulted
        }
        faults?.wake(offsets: faulted)
        lock.broadcast(frameFinished)
        finishIfComplete()
    }

    /// Frame `f` cannot be loaded: its pages are poisoned (the faulting
    /// threads get SIGBUS now, later accesses too, even once the handler
    /// is gone), its advance accounting is given back, and the failure is
    /// reported before any waiter returns.
    private func fail(_ f: Int, _ error: any Error) {
        let lost = lock.withLock { s -> [FileRange]? in
            switch s.frames[f].state {
            case .failed, .loaded:
                return nil
            default:
                s.frames[f].state = .failed(error)
                s.unitEnded(f)
                s.failed += 1
                s.keptPayloads[f] = nil
                s.frames[f].faulted = []
                return s.frames[f].header == nil ? [] : s.frames[f].wanted
            }
        }
        guard let lost else { return }
        faults?.poison(lost.isEmpty ? unreadSpan(f) : lost)
        if !lost.isEmpty {
            // Never under the file's lock: with the header known, a failure
            // comes from a loader thread.
            hooks.lost(lost)
        }
        options.onFailure?(error)
        lock.broadcast(frameFinished)
        // A caller may hold the MemoryFile's lock: finishing is left to a
        // loader thread.
        lock.broadcast(workAvailable)
    }

    /// The pages a unit whose header could not be read may give: its
    /// frame's span, or its references' destinations.
    private func unreadSpan(_ f: Int) -> [FileRange] {
        if let unit = lock.withLock({ $0.frames[f].references }) {
            return Self.destinations(of: unit)
        }
        return [FileRange(start: metadata.index[f].firstAddress, end: metadata.index[f].endAddress)]
    }

    /// Once every frame is loaded or failed: stops the fault handler (for a
    /// MemoryFile) and tells the owner.
    private func finishIfComplete() {
        let finishing = lock.withLock { s -> Bool in
            guard s.isComplete, !s.finished else { return false }
            s.finished = true
            return true
        }
        if finishing {
            finish()
        }
    }

    private func finish() {
        lock.withLock { $0.finished = true }
        if hooks.faultsEndWithLoading {
            stopFaultHandling()
        }
        hooks.finished(self, lock.withLock { $0.failed })
        lock.broadcast(frameFinished)
        lock.broadcast(workAvailable)
    }

    private let faultStop = StateLock<Bool>(false)

    private func stopFaultHandling() {
        let stop = faultStop.withLock { stopped -> Bool in
            defer { stopped = true }
            return !stopped
        }
        if stop {
            faults?.stop()
        }
    }
}

/// Writes the pages of a decompressed frame that are still wanted.
private final class WantedPagesSink: FrameSink, @unchecked Sendable {
    let target: LoadTarget
    let wanted: [FileRange]
    private(set) var written: UInt64 = 0

    init(target: LoadTarget, wanted: [FileRange]) {
        self.target = target
        self.wanted = wanted
    }

    func begin(header: CheckpointHeader, segments: [SegmentRecord]) throws {}

    func consume(_ frame: FrameHeader, data: UnsafeRawBufferPointer) throws {
        var off: UInt64 = 0
        var w = 0
        for run in frame.runs {
            while w < wanted.count && wanted[w].end <= run.start {
                w += 1
            }
            var k = w
            while k < wanted.count && wanted[k].start < run.end {
                let piece = wanted[k].intersection(run)
                if !piece.isEmpty {
                    let at = Int(off + (piece.start - run.start))
                    try target.write(UnsafeRawBufferPointer(rebasing: data[at..<at + Int(piece.length)]), at: piece.start)
                    written += piece.length
                }
                k += 1
            }
            off += run.length
        }
    }
}
