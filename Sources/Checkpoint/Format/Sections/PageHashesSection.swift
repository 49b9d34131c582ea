import PGAlloc

/// `PHSH` (tail, ancillary): a SHA-256 of each page stored in this
/// checkpoint's frames, so that a later save can tell which pages changed
/// (and `verify` that the frames hold what was saved).
///
/// Payload: algorithm u32 (1: SHA-256), hashLength u32 (32), pageCount u64,
/// runCount u64, runTableLength u64; the run table (the stored pages, as
/// `PageRunEncoder` writes them), zero padding to a multiple of 8, then
/// `pageCount` hashes in address order.
///
/// SHA-256 because a guest chooses its pages' contents: with a
/// non-cryptographic or unkeyed weak hash it could make a changed page
/// hash like the page it replaced, and a later save would take the old
/// page instead. A keyed hash would need a key kept from the guest and
/// from every reader of the checkpoint, and for as long as its children
/// are saved.
enum PageHashesSection {
    static let algorithm = Field(0, 4, "algorithm")
    static let hashLength = Field(4, 4, "hashLength")
    static let pageCount = Field(8, 8, "pageCount")
    static let runCount = Field(16, 8, "runCount")
    static let runTableLength = Field(24, 8, "runTableLength")
    static let fixedLength = 32
    static let sha256: UInt32 = 1
    static let digestLength = 32

    /// The most bytes the section takes for a checkpoint of `pages` pages:
    /// at most 20 bytes of run table and 32 of hash a page.
    static func maxLength(pages: UInt64) -> UInt64 {
        UInt64(fixedLength) + 8 + pages * (20 + UInt64(digestLength))
    }

    /// Where the hashes start in the payload.
    static func hashesOffset(runTableLength: UInt64) -> UInt64 {
        CheckpointFormat.padded(UInt64(fixedLength) + runTableLength)
    }

    /// The fixed fields, which the run table and zero padding up to
    /// `hashesOffset` follow.
    static func encodeHead(pageCount count: UInt64, runCount runs: UInt64, runTableLength: UInt64) -> [UInt8] {
        var w = ByteWriter(capacity: fixedLength)
        w.u32(sha256, algorithm)
        w.u32(UInt32(digestLength), hashLength)
        w.u64(count, pageCount)
        w.u64(runs, runCount)
        w.u64(runTableLength, self.runTableLength)
        return w.bytes
    }

    /// The fixed fields of a payload of `length` bytes found at `offset`.
    struct Head {
        var pageCount: UInt64
        var runCount: UInt64
        var runTableLength: UInt64
        /// Payload offset of the first hash.
        var hashesOffset: UInt64
    }

    /// Decodes the fixed fields; the payload (`length` bytes) must hold
    /// exactly the run table and the hashes they announce, and the pages
    /// must be the checkpoint's `storedBytes`.
    static func decodeHead(_ bytes: [UInt8], offset: UInt64, length: UInt64, storedBytes: UInt64) throws(CheckpointError) -> Head {
        let section = CheckpointSection.section(.pageHashes)
        var r = ByteReader(bytes, base: offset, section: section)
        let algo = try r.u32(algorithm)
        if algo != sha256 {
            throw .field(r, algorithm, expected: "1 (SHA-256)", found: algo)
        }
        let hashBytes = try r.u32(hashLength)
        if hashBytes != UInt32(digestLength) {
            throw .field(r, hashLength, expected: "\(digestLength)", found: hashBytes)
        }
        let pages = try r.u64(pageCount)
        if pages != storedBytes / CheckpointFormat.pageSize {
            throw .field(r, pageCount, expected: "\(storedBytes / CheckpointFormat.pageSize) (the stored pages)", found: pages)
        }
        let runs = try r.u64(runCount)
        let tableLength = try r.u64(runTableLength)
        let hashes = UInt64(digestLength) * pages
        guard tableLength <= length, hashesOffset(runTableLength: tableLength) <= length,
            length - hashesOffset(runTableLength: tableLength) == hashes
        else {
            throw .field(r, runTableLength, expected: "a run table that with \(pages) hashes fills the \(length) bytes", found: tableLength)
        }
        return Head(pageCount: pages, runCount: runs, runTableLength: tableLength, hashesOffset: hashesOffset(runTableLength: tableLength))
    }
}
