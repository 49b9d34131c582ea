import PGAlloc
import SystemPackage

/// The hashes of the pages a save stores, in order, kept in an unnamed
/// file of the temporary directory until the tail (`PHSH`) is written:
/// 8 MiB for each GiB stored, held neither by the process's heap nor in
/// memory the kernel cannot drop (the page cache writes them back), as for
/// a `SpillArray`. Where no such file can be made, in a memfd.
final class DigestSpill {
    private let file: OwnedFileDescriptor
    private var pending: [UInt8] = []
    private(set) var count: UInt64 = 0

    /// Bytes gathered before a write.
    private static let batch = 1 << 16

    init() throws {
        let unnamed = openSpillFile()
        file = unnamed >= 0 ? OwnedFileDescriptor(owning: unnamed) : try OwnedFileDescriptor.memfd(name: "pgsnap-page-hashes")
        pending.reserveCapacity(Self.batch)
    }

    func append(_ digests: [PageDigest]) throws {
        for d in digests {
            d.append(to: &pending)
        }
        count += UInt64(digests.count)
        if pending.count >= Self.batch {
            try flush()
        }
    }

    private func flush() throws {
        guard !pending.isEmpty else { return }
        let written = (count - UInt64(pending.count / PageDigest.length)) * UInt64(PageDigest.length)
        try pending.withUnsafeBytes {
            try file.descriptor.writeAll($0, atAbsoluteOffset: written, call: "pwrite the page hashes to a temporary file")
        }
        pending.removeAll(keepingCapacity: true)
    }

    /// Calls `body` with every hash's bytes, in order, in pieces of at most
    /// 1 MiB.
    func forEachPiece(_ body: ([UInt8]) throws -> Void) throws {
        try flush()
        let total = count * UInt64(PageDigest.length)
        var at: UInt64 = 0
        var piece = [UInt8](repeating: 0, count: Int(min(total, 1 << 20)))
        while at < total {
            let n = Int(min(UInt64(piece.count), total - at))
            if n < piece.count {
                piece.removeLast(piece.count - n)
            }
            _ = try piece.withUnsafeMutableBytes {
                try file.descriptor.readAll(into: $0, atAbsoluteOffset: at, call: "pread the page hashes from a temporary file")
            }
            try body(piece)
            at += UInt64(n)
        }
    }
}
