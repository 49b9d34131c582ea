import PGAlloc

/// How an input wants to be read ahead when it is read in order: blocks of
/// `blockSize` bytes, `blocksInFlight` of them fetched at once, up to
/// `end`.
struct ReadAheadPlan {
    var blockSize: Int
    var blocksInFlight: Int
    /// Reads past this offset go to the input directly.
    var end: UInt64
}

/// Fetches the blocks after a sequential reader's position in parallel,
/// for an input whose reads cost a round trip each (an object store).
///
/// Blocks are fetched by `blocksInFlight` threads and handed over in
/// order; at most `blocksInFlight + 1` blocks are held (the fetched ones
/// and the one being read), whatever the input's size. A read before the
/// window, or far past it, restarts the window there.
final class ReadAhead {
    private struct Block {
        var offset: UInt64
        var length: Int
        var buffer: PageBuffer
    }

    /// A worker's context: the input keeps its own connections.
    private final class Worker {}

    private let input: RandomAccessInput
    private let plan: ReadAheadPlan
    private var queue: WorkQueue<Worker, Block>
    /// The block being read from.
    private var current: Block?
    /// Where the oldest block not yet handed over starts.
    private var windowStart: UInt64 = 0
    /// Where the next block to fetch starts.
    private var nextFetch: UInt64 = 0
    private var freeBuffers: [PageBuffer] = []

    init(_ input: RandomAccessInput, plan: ReadAheadPlan, from offset: UInt64) throws {
        self.input = input
        self.plan = plan
        queue = try ReadAhead.makeQueue(plan)
        windowStart = offset
        nextFetch = offset
    }

    deinit {
        queue.shutDown()
    }

    private static func makeQueue(_ plan: ReadAheadPlan) throws -> WorkQueue<Worker, Block> {
        try WorkQueue(threads: plan.blocksInFlight, maxInFlight: plan.blocksInFlight, name: "pgsnap-readahead") { Worker() }
    }

    /// Reads exactly `buffer.count` bytes at `offset`.
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer, section: CheckpointSection) throws {
        var done = 0
        while done < buffer.count {
            let position = offset + UInt64(done)
            let rest = UnsafeMutableRawBufferPointer(rebasing: buffer[done...])
            if position >= plan.end {
                try input.read(at: position, into: rest, section: section)
                return
            }
            if let block = current, position >= block.offset, position < block.offset + UInt64(block.length) {
                let from = Int(position - block.offset)
                let n = min(rest.count, block.length - from)
                rest.baseAddress!.copyMemory(from: block.buffer.bytes.baseAddress! + from, byteCount: n)
                done += n
                continue
            }
            try advance(to: position)
        }
    }

    /// Makes `current` the block holding `position` (< `plan.end`).
    private func advance(to position: UInt64) throws {
        if let block = current {
            freeBuffers.append(block.buffer)
            current = nil
        }
        if position < windowStart || position >= nextFetch {
            // Every block in flight ends before the position, or the
            // position is behind them.
            try restart(at: position)
        }
        while true {
            try fetchAhead()
            guard let block = try queue.nextResult() else {
                preconditionFailure("ReadAhead: no block in flight for offset \(position) (window \(windowStart)..<\(nextFetch))")
            }
            windowStart = block.offset + UInt64(block.length)
            if position < windowStart {
                current = block
                try fetchAhead()
                return
            }
            freeBuffers.append(block.buffer)
        }
    }

    /// Drops the blocks in flight and fetches from `position` on.
    private func restart(at position: UInt64) throws {
        if queue.drain() != nil {
            // A failed queue skips every later job: start a new one.
            queue.shutDown()
            queue = try ReadAhead.makeQueue(plan)
        }
        windowStart = position
        nextFetch = position
    }

    /// Queues blocks until the window is full or reaches the end.
    /// Buffers: one per block in flight, and the current block's.
    private func fetchAhead() throws {
        while !queue.isFull && nextFetch < plan.end {
            let offset = nextFetch
            let length = Int(min(UInt64(plan.blockSize), plan.end - offset))
            let buffer = try freeBuffers.popLast() ?? PageBuffer(capacity: plan.blockSize)
            nextFetch += UInt64(length)
            let input = self.input
            queue.submit { _ in
                try input.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[..<length]), section: .file)
                return Block(offset: offset, length: length, buffer: buffer)
            }
        }
    }
}
