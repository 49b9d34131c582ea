import CPageHash
import Crypto
import PGAlloc

/// The SHA-256 of one page, as `PHSH` stores it: a value cheap to compare
/// and to keep in tables.
struct PageDigest: Hashable, Sendable {
    var words: (UInt64, UInt64, UInt64, UInt64)

    static let length = 32

    init(words: (UInt64, UInt64, UInt64, UInt64)) {
        self.words = words
    }

    /// The SHA-256 of `page`.
    init(of page: UnsafeRawBufferPointer) {
        let digest = SHA256.hash(data: page)
        words = digest.withUnsafeBytes { b in
            (b.loadUnaligned(fromByteOffset: 0, as: UInt64.self), b.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
             b.loadUnaligned(fromByteOffset: 16, as: UInt64.self), b.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        }
    }

    /// The digest stored in `bytes` (32 of them).
    init(bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count == Self.length, "PageDigest: \(bytes.count) bytes")
        words = (bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self), bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                 bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self), bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
    }

    /// The first eight bytes, as a table key.
    var prefix: UInt64 { words.0 }

    static func == (a: PageDigest, b: PageDigest) -> Bool {
        a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2 && a.words.3 == b.words.3
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
    }
}

/// Computes the SHA-256 of many pages at once, with Intel's multi-buffer
/// library (CPageHash): the digests `PageDigest(of:)` gives, about twice as
/// fast where the CPU has the SHA extensions, as two pages are in flight.
/// Where the library is missing (not installed, or not built for this
/// architecture) it hashes one page after another with swift-crypto.
/// Not thread-safe: one per thread (a save worker's context, or a
/// `PageHasherPool`).
final class PageHasher {
    /// nil: swift-crypto, a page at a time.
    private let hasher: OpaquePointer?

    /// `portable`: use swift-crypto even where the library is there (for
    /// tests).
    init(portable: Bool = false) {
        precondition(MemoryLayout<PageDigest>.stride == PageDigest.length, "PageHasher: PageDigest is not 32 bytes")
        hasher = portable ? nil : pg_page_hasher_new()
    }

    deinit {
        if let hasher {
            pg_page_hasher_free(hasher)
        }
    }

    /// The code that hashes on this machine, for reports.
    var kind: String {
        hasher.map { String(cString: pg_page_hasher_kind($0)) } ?? Self.portableKind
    }

    static let portableKind = "swift-crypto, a page at a time"

    /// Appends the SHA-256 of each page of `pages` (whole pages, end to
    /// end) to `digests`.
    func appendDigests(of pages: UnsafeRawBufferPointer, to digests: inout [PageDigest]) {
        let page = Int(CheckpointFormat.pageSize)
        precondition(pages.count % page == 0, "PageHasher: \(pages.count) bytes are not whole pages")
        guard let base = pages.baseAddress, pages.count > 0 else { return }
        let count = pages.count / page
        guard let hasher else {
            for i in 0..<count {
                digests.append(PageDigest(of: UnsafeRawBufferPointer(start: base + i * page, count: page)))
            }
            return
        }
        let first = digests.count
        digests.append(contentsOf: repeatElement(PageDigest(words: (0, 0, 0, 0)), count: count))
        digests.withUnsafeMutableBytes { bytes in
            let out = (bytes.baseAddress! + first * PageDigest.length).assumingMemoryBound(to: UInt8.self)
            let error = pg_page_hasher_sha256(hasher, base, count, page, out)
            precondition(error == 0, "pg_page_hasher_sha256: \(String(cString: pg_page_hasher_error(error)))")
        }
    }
}

/// Hashers lent to whichever thread needs one, for code that runs on
/// threads it does not own (a frame sink's `consume`).
final class PageHasherPool: Sendable {
    private let idle = StateLock<[PageHasher]>([])

    func withHasher<R>(_ body: (PageHasher) throws -> R) rethrows -> R {
        let hasher = idle.withLock { $0.popLast() } ?? PageHasher()
        defer { idle.withLock { $0.append(hasher) } }
        return try body(hasher)
    }
}
