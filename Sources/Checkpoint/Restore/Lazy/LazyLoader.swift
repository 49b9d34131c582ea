#if canImport(Glibc)
import Glibc
#endif
import PGAlloc
import SystemPackage

/// Where a loader writes the pages of a frame: a restored memfd, or a
/// VMM's memory through its userfaultfd.
protocol LoadTarget: AnyObject, Sendable {
    /// Writes `bytes` at checkpoint address `address` (pages still wanted).
    func write(_ bytes: UnsafeRawBufferPointer, at address: UInt64) throws
}

/// A restored MemoryFile's memfd, written with `pwrite`.
final class MemfdTarget: LoadTarget, @unchecked Sendable {
    let fd: FileDescriptor

    init(fd: FileDescriptor) {
        self.fd = fd
    }

    func write(_ bytes: UnsafeRawBufferPointer, at address: UInt64) throws {
        try fd.writeAll(bytes, atAbsoluteOffset: address, call: "pwrite into the restored memfd")
    }
}

/// Loads a checkpoint's frames in the background into a target (a lazily
/// restored MemoryFile, or a VMM's memory), and lets every access wait only
/// for the frames it needs.
///
/// Frames are loaded in the checkpoint's prefetch order (its `PREF`
/// section) when it has one, then in address order; a frame someone waits
/// for (an API call through `waitUntilLoaded(_:)`, a page fault through
/// the `FaultHandler`) goes first. A loader thread takes a frame,
/// reads its payload, checks its CRC, decompresses it and writes the pages
/// still wanted into the memfd with `pwrite`; pages dropped meanwhile
/// (freed or decommitted: `drop(_:)`) are never written, and a drop waits
/// for a frame being written to finish, so that nothing lands on pages
/// after they are handed back.
///
/// Lock order: the MemoryFile's state lock (held by `decRef` when it calls
/// `drop`), then this loader's lock. The loader never takes a lock of the
/// MemoryFile, and the fault handler takes only this loader's lock.
final class LazyLoader: PendingContents, @unchecked Sendable {
    enum FrameState {
        case pending
        case loading
        case loaded
        case failed(any Error)
    }

    struct Frame {
        /// The frame's runs (its header's), for locating its pages in the
        /// decompressed data.
        let header: FrameHeader
        let payloadOffset: UInt64
        /// The pages still to write: the runs less what was dropped.
        var wanted: [FileRange]
        var state = FrameState.pending
        /// File offsets of pages a thread faulted on, to wake once the
        /// frame is written.
        var faulted: [UInt64] = []
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

        var isComplete: Bool { done + failed == frames.count }
    }

    private let input: RandomAccessInput
    private let header: CheckpointHeader
    private var target: LoadTarget
    /// Told of each frame's first page as it is first needed, while
    /// recording.
    private let onAccess: @Sendable (UInt64) -> Void
    /// Told when every frame is loaded or failed (with the failures).
    private let onFinish: @Sendable (LazyLoader, Int) -> Void
    /// Whether the fault handler stops once everything is loaded (a
    /// MemoryFile's: access is ordinary from then on) or goes on until
    /// `cancel()` (a VMM's: holes and removed pages still fault).
    private let faultsEndWithLoading: Bool
    private let lock: StateLock<State>
    private let workAvailable: StateLock<State>.Condition
    private let frameFinished: StateLock<State>.Condition
    private var faults: FaultHandler?
    /// Frame spans for finding a page's frame: frame i covers
    /// `[spans[i].start, spans[i].end)`, in address order.
    private let spans: [FileRange]
    private let options: LazyRestoreOptions
    private let recordingDeadline: UInt64
    private let recordingFrameLimit: Int

    init(
        input: RandomAccessInput, metadata: CheckpointMetadata, target: LoadTarget, options: LazyRestoreOptions,
        onAccess: @escaping @Sendable (UInt64) -> Void = { _ in },
        onFinish: @escaping @Sendable (LazyLoader, Int) -> Void = { _, _ in }, faultsEndWithLoading: Bool = true
    ) throws {
        self.faultsEndWithLoading = faultsEndWithLoading
        self.input = input
        header = metadata.header
        self.target = target
        self.onAccess = onAccess
        self.onFinish = onFinish
        self.options = options
        var frames: [Frame] = []
        frames.reserveCapacity(metadata.frames.count)
        for (frame, entry) in zip(metadata.frames, metadata.index) {
            frames.append(Frame(header: frame, payloadOffset: entry.offset + UInt64(frame.headerLength), wanted: frame.runs))
        }
        spans = metadata.index.map { FileRange(start: $0.firstAddress, end: $0.endAddress) }
        // The stored order first, then every other frame by address.
        var order = metadata.prefetchOrder.map { Int($0) }
        let named = Set(order)
        order += frames.indices.filter { !named.contains($0) }
        let threadCount = max(1, options.loaderThreads)
        var state = State(
            frames: frames, order: order, bytesTotal: metadata.totals.storedBytes, loadersRunning: threadCount,
            recording: options.recordAccessOrder != nil, background: options.backgroundLoading)
        state.done = 0
        lock = StateLock(state)
        workAvailable = lock.makeCondition()
        frameFinished = lock.makeCondition()
        let recording = options.recordAccessOrder ?? AccessRecording(seconds: 0, frameShare: 0)
        recordingDeadline = monotonicNanoseconds() + UInt64(max(0, recording.seconds) * 1e9)
        recordingFrameLimit = Int((Double(frames.count) * min(1, max(0, recording.frameShare))).rounded(.up))
        if frames.isEmpty {
            lock.withLock { $0.loadersRunning = 0 }
        }
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

    var progress: ContentLoadProgress {
        lock.withLock { s in
            ContentLoadProgress(
                framesDone: s.done, framesTotal: s.frames.count, bytesLoaded: s.bytesLoaded, bytesTotal: s.bytesTotal,
                framesFailed: s.failed)
        }
    }

    func waitUntilLoaded(_ range: FileRange) throws {
        let needed = framesWanting(range)
        guard !needed.isEmpty else { return }
        let failure: (any Error)? = lock.withLock(waitingOn: frameFinished) { s -> StateLock<State>.Step<(any Error)?> in
            var waiting = false
            for f in needed {
                switch s.frames[f].state {
                case .pending:
                    if !s.frames[f].wanted.isEmpty && s.frames[f].wanted.contains(where: { $0.overlaps(range) }) {
                        prioritize(&s, f, page: max(range.start, s.frames[f].wanted[0].start))
                        waiting = true
                    }
                case .loading:
                    waiting = true
                case .loaded:
                    break
                case .failed(let error):
                    if s.frames[f].wanted.contains(where: { $0.overlaps(range) }) {
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

    func drop(_ range: FileRange) {
        let needed = framesWanting(range)
        guard !needed.isEmpty else { return }
        var clearPoison = false
        lock.withLock(waitingOn: frameFinished) { s -> StateLock<State>.Step<Void> in
            // A frame being written must finish first: its pages cannot be
            // taken back from the kernel halfway.
            if needed.contains(where: { if case .loading = s.frames[$0].state { return true } else { return false } }) {
                return .wait
            }
            return .done(())
        }
        lock.withLock { s in
            for f in needed {
                let before = s.frames[f].wanted
                var after: [FileRange] = []
                for r in before {
                    after += r.subtracting(range)
                }
                guard after != before else { continue }
                let droppedBytes = before.reduce(0) { $0 + $1.length } - after.reduce(0) { $0 + $1.length }
                s.frames[f].wanted = after
                switch s.frames[f].state {
                case .pending:
                    s.bytesTotal -= droppedBytes
                    if after.isEmpty {
                        s.frames[f].state = .loaded
                        s.done += 1
                    }
                case .failed:
                    clearPoison = true
                default:
                    break
                }
            }
        }
        if clearPoison {
            faults?.clearPoison(range)
        }
        finishIfComplete()
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

    // MARK: Recording

    /// The file offsets first needed, in order, while recording.
    var recordedAccessOrder: [UInt64] { lock.withLock { $0.accessOrder } }

    // MARK: Internals

    /// The frames whose span meets `range`.
    private func framesWanting(_ range: FileRange) -> [Int] {
        // The first span ending after range.start.
        var lo = 0
        var hi = spans.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if spans[mid].end <= range.start { lo = mid + 1 } else { hi = mid }
        }
        var out: [Int] = []
        var i = lo
        while i < spans.count && spans[i].start < range.end {
            out.append(i)
            i += 1
        }
        return out
    }

    /// Puts frame `f` first in line (it is pending), and records it.
    private func prioritize(_ s: inout State, _ f: Int, page: UInt64) {
        s.urgent.append(f)
        if s.recording {
            if monotonicNanoseconds() > recordingDeadline || s.recordedFrames.count >= recordingFrameLimit {
                s.recording = false
            } else if s.recordedFrames.insert(f).inserted {
                s.accessOrder.append(page)
                onAccess(page)
            }
        }
        lock.signal(workAvailable)
    }

    /// What the fault handler does with a fault on the page at `offset`.
    private func classifyFault(_ offset: UInt64) -> FaultHandler.FaultAction {
        let page = FileRange(start: offset, end: offset + 4096)
        guard let f = framesWanting(page).first else { return .zero }
        return lock.withLock { s in
            let wanted = s.frames[f].wanted.contains { $0.overlaps(page) }
            switch s.frames[f].state {
            case .pending where wanted:
                s.frames[f].faulted.append(offset)
                prioritize(&s, f, page: offset)
                return .wait
            case .loading where wanted:
                s.frames[f].faulted.append(offset)
                return .wait
            case .failed where wanted:
                return .poison
            case .loaded:
                return wanted ? .wake : .zero
            default:
                // Not a stored page (a hole inside the frame's span), or
                // one dropped: it holds no saved data.
                return .zero
            }
        }
    }

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
            context = try DecodeContext(frameLimit: Int(header.frameLimit))
            payload = try PageBuffer(capacity: Int(CheckpointFormat.maxCompressedLength(frameLimit: header.frameLimit)))
        } catch {
            failEverything(error)
            return
        }
        while let (f, frame, wanted) = nextFrame() {
            let result = Result { try load(frame, wanted: wanted, context: context, payload: payload) }
            complete(f, result)
        }
        lock.withLock { $0.loadersRunning -= 1 }
        finishIfComplete()
    }

    /// Takes the next frame to load: waited-for ones first.
    private func nextFrame() -> (Int, Frame, [FileRange])? {
        lock.withLock(waitingOn: workAvailable) { s -> StateLock<State>.Step<(Int, Frame, [FileRange])?> in
            if s.cancelled {
                return .done(nil)
            }
            while s.urgentHead < s.urgent.count {
                let f = s.urgent[s.urgentHead]
                s.urgentHead += 1
                if case .pending = s.frames[f].state {
                    s.frames[f].state = .loading
                    return .done((f, s.frames[f], s.frames[f].wanted))
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
                    s.frames[f].state = .loading
                    return .done((f, s.frames[f], s.frames[f].wanted))
                }
            }
            return .done(nil)
        }
    }

    /// Reads, checks and decompresses frame `frame`, and writes the pages of
    /// `wanted` into the memfd.
    private func load(_ frame: Frame, wanted: [FileRange], context: DecodeContext, payload: PageBuffer) throws -> UInt64 {
        let h = frame.header
        let compressed = UnsafeMutableRawBufferPointer(rebasing: payload.bytes[..<Int(h.compressedLength)])
        try input.read(at: frame.payloadOffset, into: compressed, section: .frame(h.sequence))
        let sink = WantedPagesSink(target: target, wanted: wanted)
        try decodeFrame(h, payload: UnsafeRawBufferPointer(compressed), payloadOffset: frame.payloadOffset, context: context, sink: sink)
        return sink.written
    }

    private func complete(_ f: Int, _ result: Result<UInt64, any Error>) {
        let (faulted, failedRanges): ([UInt64], [FileRange]) = lock.withLock { s in
            let faulted = s.frames[f].faulted
            s.frames[f].faulted = []
            switch result {
            case .success(let bytes):
                s.frames[f].state = .loaded
                s.done += 1
                s.bytesLoaded += bytes
                return (faulted, [])
            case .failure(let error):
                s.frames[f].state = .failed(error)
                s.failed += 1
                return (faulted, s.frames[f].wanted)
            }
        }
        if case .failure(let error) = result {
            // Every page of the frame: the faulting threads get SIGBUS now,
            // later accesses too, even once the handler is gone. Reported
            // before any waiter returns.
            faults?.poison(failedRanges)
            options.onFailure?(error)
        } else {
            faults?.wake(offsets: faulted)
        }
        lock.broadcast(frameFinished)
    }

    private func failEverything(_ error: any Error) {
        var pending: [Int] = []
        lock.withLock { s in
            for f in s.frames.indices {
                if case .pending = s.frames[f].state {
                    s.frames[f].state = .loading
                    pending.append(f)
                }
            }
        }
        for f in pending {
            complete(f, .failure(error))
        }
    }

    /// Once every frame is loaded or failed: stops the fault handler and,
    /// without failures, detaches from the file, which then costs nothing
    /// more. With failures the loader stays attached, so that operations
    /// on the failed pages keep throwing.
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
        if faultsEndWithLoading {
            stopFaultHandling()
        }
        onFinish(self, lock.withLock { $0.failed })
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

/// Writes the pages of a decompressed frame that are still wanted into the
/// memfd.
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
