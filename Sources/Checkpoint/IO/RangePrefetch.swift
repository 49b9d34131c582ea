import PGAlloc

/// Fetches known, scattered ranges of an input in parallel ahead of a
/// reader that visits them in order and skips what lies between: the frame
/// headers of a checkpoint scanned without its payloads (inspect, a lazy
/// restore), whose offsets the index gives.
///
/// At most `inFlight` ranges are fetched or held at once. A read that one
/// fetched range holds whole is served from it; any other read goes to the
/// input as asked.
final class RangePrefetch {
    private struct Fetched {
        var offset: UInt64
        var bytes: [UInt8]
    }

    private final class Worker {}

    private let input: RandomAccessInput
    private let queue: WorkQueue<Worker, Fetched>
    /// Ranges not yet queued, in order, from `nextRange`.
    private let ranges: [(offset: UInt64, length: Int)]
    private var nextRange = 0
    /// The oldest fetched range not yet passed by the reader.
    private var current: Fetched?

    /// Ranges of `length` bytes (less at the input's end) at `offsets`,
    /// which must increase; a range starting inside the previous one is
    /// left out.
    init(_ input: RandomAccessInput, offsets: [UInt64], length: Int, inFlight: Int) throws {
        self.input = input
        var ranges: [(UInt64, Int)] = []
        var end: UInt64 = 0
        for offset in offsets where offset >= end && offset < input.length {
            let n = Int(min(UInt64(length), input.length - offset))
            ranges.append((offset, n))
            end = offset + UInt64(n)
        }
        self.ranges = ranges
        queue = try WorkQueue(threads: inFlight, maxInFlight: inFlight, name: "pgsnap-prefetch") { Worker() }
    }

    deinit {
        queue.shutDown()
    }

    /// Reads exactly `buffer.count` bytes at `offset`.
    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer, section: CheckpointSection) throws {
        let end = offset + UInt64(buffer.count)
        try fill()
        // Drop what the reader has passed; stop at the first range that
        // reaches beyond the read's start.
        while true {
            if current == nil {
                guard let next = try queue.nextResult() else { break }
                current = next
                try fill()
            }
            let fetched = current!
            if fetched.offset + UInt64(fetched.bytes.count) <= offset {
                current = nil
                continue
            }
            if fetched.offset <= offset && end <= fetched.offset + UInt64(fetched.bytes.count) {
                fetched.bytes.withUnsafeBytes { bytes in
                    buffer.baseAddress!.copyMemory(from: bytes.baseAddress! + Int(offset - fetched.offset), byteCount: buffer.count)
                }
                return
            }
            break
        }
        try input.read(at: offset, into: buffer, section: section)
    }

    /// Queues ranges while there is room.
    private func fill() throws {
        while !queue.isFull && nextRange < ranges.count {
            let (offset, length) = ranges[nextRange]
            nextRange += 1
            let input = self.input
            queue.submit { _ in
                var bytes = [UInt8](repeating: 0, count: length)
                try bytes.withUnsafeMutableBytes { try input.read(at: offset, into: $0, section: .file) }
                return Fetched(offset: offset, bytes: bytes)
            }
        }
    }
}
