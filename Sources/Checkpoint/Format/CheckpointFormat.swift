import CZstd

/// Constants of the checkpoint format (docs/FORMAT.md).
public enum CheckpointFormat {
    /// The version this code writes, and the only one it reads.
    public static let version: UInt32 = 1

    static let magic: [UInt8] = [0x89, 0x50, 0x47, 0x53, 0x4E, 0x41, 0x50, 0x0A]
    static let trailerMagic: [UInt8] = [0x89, 0x50, 0x47, 0x53, 0x45, 0x4E, 0x44, 0x0A]
    static let headerLength = 64
    static let trailerLength = 64
    public static let pageSize: UInt64 = 4096
    /// The saved file's size is a multiple of the MemoryFile chunk size.
    static let chunkSize: UInt64 = 1 << 30
    static let maxFileSize: UInt64 = (1 << 63) - (1 << 30)
    /// No frame may hold more uncompressed bytes than this.
    public static let maxFrameLimit: UInt32 = 64 << 20
    /// Memory kinds counted in version 1.
    static let kindCount = 6
    static let segmentRecordLength: UInt64 = 32
    static let frameFixedLength = 40
    /// The smallest frame record: one run of two one-byte numbers, a
    /// one-byte payload, padding.
    static let minFrameRecordLength: UInt64 = 48
    static let indexFixedLength = 24
    static let indexEntryLength = 40
    /// "FRM1" and "IDX1", as read little-endian.
    static let frameTag: UInt32 = 0x314D_5246
    static let indexTag: UInt32 = 0x3158_4449
    /// The largest zstd window a frame may need.
    static let windowLogMax: Int32 = 27

    /// The largest compressed payload a frame of `frameLimit` bytes may have.
    static func maxCompressedLength(frameLimit: UInt32) -> UInt64 {
        UInt64(ZSTD_compressBound(Int(frameLimit)))
    }

    /// Length of the index for `frameCount` frames.
    static func indexLength(frameCount: UInt64) -> UInt64 {
        UInt64(indexFixedLength + 16 * kindCount + 8) + UInt64(indexEntryLength) * frameCount
    }

    /// Bytes of padding after `length` bytes to reach a multiple of 8.
    static func padding(after length: UInt64) -> Int {
        Int((8 - length % 8) % 8)
    }
}
