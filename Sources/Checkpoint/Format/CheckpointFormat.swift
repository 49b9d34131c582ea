import CZstd

/// Constants of the checkpoint format (docs/FORMAT.md).
public enum CheckpointFormat {
    /// The version this code writes.
    public static let version: UInt32 = 2
    /// The versions this code reads.
    public static let versionsRead: ClosedRange<UInt32> = 1...2

    static let magic: [UInt8] = [0x89, 0x50, 0x47, 0x53, 0x4E, 0x41, 0x50, 0x0A]
    static let trailerMagic: [UInt8] = [0x89, 0x50, 0x47, 0x53, 0x45, 0x4E, 0x44, 0x0A]
    public static let pageSize: UInt64 = 4096
    /// The saved file's size is a multiple of the MemoryFile chunk size.
    static let chunkSize: UInt64 = 1 << 30
    static let maxFileSize: UInt64 = (1 << 63) - (1 << 30)
    /// No frame may hold more uncompressed bytes than this.
    public static let maxFrameLimit: UInt32 = 64 << 20
    /// Memory kinds counted, in versions 1 and 2.
    static let kindCount = 6
    /// The smallest frame record: one run of two one-byte numbers, a
    /// one-byte payload, padding.
    static let minFrameRecordLength: UInt64 = 48
    /// Version 2: the smallest offset of the first frame (a header, and a
    /// head section table with one entry).
    static let minFramesOffsetV2 = UInt64(HeaderLayout.recordLength + SectionTableLayout.fixedLength + SectionEntryLayout.recordLength + ClosingLayout.recordLength)
    /// Version 2: the smallest tail (a section table with one entry).
    static let minTailLength = UInt64(SectionTableLayout.fixedLength + SectionEntryLayout.recordLength + ClosingLayout.recordLength)
    /// "FRM1", "IDX1", "IDX2" and "SECT", as read little-endian.
    static let frameTag: UInt32 = 0x314D_5246
    static let indexTagV1: UInt32 = 0x3158_4449
    static let indexTagV2: UInt32 = 0x3258_4449
    static let sectionTableTag: UInt32 = 0x5443_4553
    /// The largest zstd window a frame may need.
    static let windowLogMax: Int32 = 27

    /// The largest compressed payload a frame of `frameLimit` bytes may have.
    static func maxCompressedLength(frameLimit: UInt32) -> UInt64 {
        UInt64(ZSTD_compressBound(Int(frameLimit)))
    }

    /// Bytes of padding after `length` bytes to reach a multiple of 8.
    static func padding(after length: UInt64) -> Int {
        Int((8 - length % 8) % 8)
    }

    /// `length` rounded up to a multiple of 8.
    static func padded(_ length: UInt64) -> UInt64 {
        length + UInt64(padding(after: length))
    }
}
