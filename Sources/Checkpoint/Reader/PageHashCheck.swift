import PGAlloc

/// Checks each decompressed page against the hash `PHSH` stores for it
/// (read from the file as frames arrive, on the workers): that the frames
/// hold what was saved, and that the page hashes list exactly the stored
/// pages.
final class PageHashCheckSink: FrameSink, @unchecked Sendable {
    let input: RandomAccessInput
    let hashes: PageHashes
    private let hashers = PageHasherPool()

    init(input: RandomAccessInput, hashes: PageHashes) {
        self.input = input
        self.hashes = hashes
    }

    func begin(header: CheckpointHeader, segments: [SegmentRecord]) throws {}

    func consume(_ frame: FrameHeader, data: UnsafeRawBufferPointer) throws {
        let page = Int(CheckpointFormat.pageSize)
        var off = 0
        for run in frame.runs {
            guard let first = hashes.runs.ordinal(of: run.start), hashes.runs.contains(run) else {
                throw CheckpointError.field(
                    .section(.pageHashes), hashes.sealed?.entry.offset ?? hashes.hashesOffset, "runs", expected: "the pages frame \(frame.sequence) stores", found: "not \(run)")
            }
            let count = Int(run.length) / page
            // Read straight into digests: a PageDigest is its 32 bytes.
            var stored = [PageDigest](repeating: PageDigest(words: (0, 0, 0, 0)), count: count)
            try stored.withUnsafeMutableBytes {
                try hashes.readDigests(from: input, ordinal: first, into: $0)
            }
            var computed: [PageDigest] = []
            computed.reserveCapacity(count)
            hashers.withHasher { $0.appendDigests(of: UnsafeRawBufferPointer(rebasing: data[off..<off + Int(run.length)]), to: &computed) }
            for i in 0..<count {
                if computed[i] != stored[i] {
                    throw CheckpointError(
                        .checksumMismatch, .frame(frame.sequence), offset: 0,
                        "page \(hex(run.start + UInt64(i * page))) does not have the SHA-256 PHSH stores for it")
                }
            }
            off += Int(run.length)
        }
    }
}
