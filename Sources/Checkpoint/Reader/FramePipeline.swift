import PGAlloc

/// Checks and decompresses frames on worker threads, each into a buffer of
/// its own, and hands the data to a sink.
///
/// The reader fills a payload buffer (`submit`); at most `threads + 2`
/// compressed frames are in flight, each in a buffer large enough for the
/// largest frame the header allows, reused as workers finish. Failures come
/// back in frame order.
final class FramePipeline {
    private let queue: WorkQueue<DecodeContext, PageBuffer>
    private let sink: FrameSink
    private let opener: FrameOpener?
    private let payloadCapacity: Int
    private var freePayloads: [PageBuffer] = []

    /// `opener` checks and opens each frame's payload first, if it must.
    init(header: CheckpointHeader, threads: Int, sink: FrameSink, opener: FrameOpener?) throws {
        let frameLimit = Int(header.frameLimit)
        self.sink = sink
        self.opener = opener
        payloadCapacity = Int(CheckpointFormat.maxCompressedLength(frameLimit: header.frameLimit))
            + (opener?.sealOverhead(frameLimit: header.frameLimit) ?? 0)
        queue = try WorkQueue(threads: threads, maxInFlight: threads + 2, name: "pgsnap-restore") {
            try DecodeContext(frameLimit: frameLimit)
        }
    }

    /// Waits for room, lets `fill` read the frame's payload into a free
    /// buffer, and queues the frame.
    func submit(_ frame: FrameHeader, payloadOffset: UInt64, fill: (UnsafeMutableRawBufferPointer) throws -> Void) throws {
        while queue.isFull {
            freePayloads.append(try queue.nextResult()!)
        }
        let payload = try freePayloads.popLast() ?? PageBuffer(capacity: payloadCapacity)
        let compressed = UnsafeMutableRawBufferPointer(rebasing: payload.bytes[..<Int(frame.compressedLength)])
        try fill(compressed)
        let sink = self.sink
        let opener = self.opener
        queue.submit { context in
            try decodeFrame(frame, payload: compressed, payloadOffset: payloadOffset, context: context, sink: sink, opener: opener)
            return payload
        }
    }

    /// Waits for every frame; throws the first failure, in frame order.
    func finish() throws {
        if let error = queue.drain() {
            throw error
        }
    }

    /// Waits for every frame; returns the first failure.
    func drain() -> (any Error)? {
        queue.drain()
    }

    func shutDown() {
        queue.shutDown()
    }
}

/// A decompression worker's context.
final class DecodeContext {
    var decompressor: ZstdDecompressor
    let scratchBuffer: PageBuffer

    var scratch: UnsafeMutableRawBufferPointer { scratchBuffer.bytes }

    init(frameLimit: Int) throws {
        decompressor = try ZstdDecompressor(windowLogMax: CheckpointFormat.windowLogMax)
        scratchBuffer = try PageBuffer(capacity: frameLimit)
    }
}

/// Checks a frame's payload, opens it (`opener`: its signed digest, its
/// encryption) and decompresses it for the sink (on a worker).
func decodeFrame(
    _ frame: FrameHeader, payload stored: UnsafeMutableRawBufferPointer, payloadOffset: UInt64, context: DecodeContext, sink: FrameSink,
    opener: FrameOpener?
) throws {
    let section = CheckpointSection.frame(frame.sequence)
    let crc = CRC32C.checksum(UnsafeRawBufferPointer(stored))
    if crc != frame.payloadCRC {
        throw CheckpointError(
            .checksumMismatch, section, offset: payloadOffset,
            "payloadCRC: stored \(hex(UInt64(frame.payloadCRC))), computed \(hex(UInt64(crc)))")
    }
    let payload = try opener?.open(frame, payload: stored, payloadOffset: payloadOffset) ?? UnsafeRawBufferPointer(stored)
    let out = UnsafeMutableRawBufferPointer(rebasing: context.scratch[..<Int(frame.uncompressedLength)])
    do {
        try context.decompressor.decompress(payload, into: out)
    } catch {
        throw CheckpointError(.badPayload, section, offset: payloadOffset, "\(error)")
    }
    try sink.consume(frame, data: UnsafeRawBufferPointer(out))
}
