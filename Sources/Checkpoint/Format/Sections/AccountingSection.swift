import PGAlloc

/// `ACCT` (tail, critical): stored bytes per memory kind (of the segment
/// each stored page lies in) and the saved file's accounting when the save
/// ended. Version 1 kept both in its index.
///
/// Payload (104 bytes): kindCount u32 (6), reserved u32, storedPerKind
/// 6 × u64, accountingPerKind 6 × u64.
enum AccountingSection {
    static let kindCount = Field(0, 4, "kindCount")
    static let reserved = Field(4, 4, "reserved")
    static let storedPerKind = 8
    static let length = UInt64(8 + 16 * CheckpointFormat.kindCount)

    static func encode(storedPerKind: MemoryStats, accounting: MemoryStats) -> [UInt8] {
        var w = ByteWriter(capacity: Int(length))
        w.u32(UInt32(CheckpointFormat.kindCount), kindCount)
        w.u32(0, reserved)
        for kind in MemoryKind.allCases {
            w.u64(storedPerKind[kind])
        }
        for kind in MemoryKind.allCases {
            w.u64(accounting[kind])
        }
        return w.bytes
    }

    /// Decodes the payload found at `offset`; the stored bytes per kind must
    /// add up to the index's `storedBytes`.
    static func decode(_ bytes: [UInt8], offset: UInt64, storedBytes: UInt64) throws(CheckpointError) -> (stored: MemoryStats, accounting: MemoryStats) {
        var r = ByteReader(bytes, base: offset, section: .section(.accounting))
        guard UInt64(bytes.count) == length else {
            throw .field(.section(.accounting), offset, "length", expected: "\(length)", found: bytes.count)
        }
        let count = try r.u32(kindCount)
        if count != UInt32(CheckpointFormat.kindCount) {
            throw .field(r, kindCount, expected: "\(CheckpointFormat.kindCount)", found: count)
        }
        try r.zeros(reserved)
        let stored = try decodePerKind(&r, storedBytes: storedBytes)
        var accounting = MemoryStats()
        for kind in MemoryKind.allCases {
            accounting[kind] = try r.u64()
        }
        return (stored, accounting)
    }
}
