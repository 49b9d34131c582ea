import PGAlloc

/// The hashes of the pages a save stores, in order, kept until the tail
/// (`PHSH`) is written: 32 bytes a stored page, 8 MiB for each GiB, in a
/// `SpillArray` (past 1 MiB, the page cache of a temporary file rather
/// than the process's heap).
final class DigestSpill {
    private var bytes = SpillArray<UInt8>()
    /// Hashes not yet moved into `bytes`, appended a few at a time.
    private var pending: [UInt8] = []

    /// Bytes gathered before they move.
    private static let batch = 1 << 16

    init() {
        pending.reserveCapacity(Self.batch)
    }

    var count: UInt64 { UInt64((bytes.count + pending.count) / PageDigest.length) }

    func append(_ digests: [PageDigest]) {
        for d in digests {
            d.append(to: &pending)
        }
        if pending.count >= Self.batch {
            flush()
        }
    }

    private func flush() {
        bytes.append(contentsOf: pending)
        pending.removeAll(keepingCapacity: true)
    }

    /// Calls `body` with every hash's bytes, in order, in pieces of at most
    /// 1 MiB.
    func forEachPiece(_ body: ([UInt8]) throws -> Void) throws {
        flush()
        try bytes.forEachPiece(body)
    }
}
