/// The fixed header at the start of a checkpoint.
public struct CheckpointHeader: Hashable, Sendable {
    /// The largest uncompressed size of any frame.
    public var frameLimit: UInt32
    /// The size of the saved MemoryFile.
    public var fileSize: UInt64
    /// The saved memory's own length: `fileSize` for a MemoryFile, the
    /// image's length for a raw image.
    public var dataSize: UInt64
    /// Segments in the metadata.
    public var segmentCount: UInt64
    /// The header's CRC, which the trailer repeats. Set by `encoded()` and
    /// `decode(_:)`.
    public internal(set) var crc: UInt32 = 0

    public init(frameLimit: UInt32, fileSize: UInt64, dataSize: UInt64, segmentCount: UInt64) {
        self.frameLimit = frameLimit
        self.fileSize = fileSize
        self.dataSize = dataSize
        self.segmentCount = segmentCount
    }

    /// Length of the metadata section.
    public var metadataLength: UInt64 {
        segmentCount * CheckpointFormat.segmentRecordLength + 8
    }

    /// Offset of the first frame record.
    public var framesOffset: UInt64 {
        UInt64(CheckpointFormat.headerLength) + metadataLength
    }

    mutating func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: CheckpointFormat.headerLength)
        w.raw(CheckpointFormat.magic)
        w.u32(CheckpointFormat.version)
        w.u32(UInt32(CheckpointFormat.headerLength))
        w.u32(0)  // flags
        w.u32(UInt32(CheckpointFormat.pageSize))
        w.u32(frameLimit)
        w.u32(UInt32(CheckpointFormat.kindCount))
        w.u64(fileSize)
        w.u64(dataSize)
        w.u64(segmentCount)
        w.u32(0)  // reserved
        w.crc(from: 0)
        crc = w.bytes.withUnsafeBytes { $0.load(fromByteOffset: 60, as: UInt32.self).littleEndian }
        return w.bytes
    }

    /// Decodes and checks a header from the first bytes of a checkpoint
    /// (fewer than 64 if the file is that short).
    static func decode(_ bytes: [UInt8]) throws(CheckpointError) -> CheckpointHeader {
        let magic = CheckpointFormat.magic
        let prefix = Array(bytes.prefix(magic.count))
        if prefix != Array(magic.prefix(prefix.count)) {
            throw CheckpointError(
                .notACheckpoint, .header, offset: 0,
                "magic: expected \(hexBytes(magic)), found \(hexBytes(prefix))")
        }
        var r = ByteReader(bytes, base: 0, section: .header)
        _ = try r.raw(magic.count)
        let version = try r.u32()
        if version != CheckpointFormat.version {
            throw CheckpointError(.unsupportedVersion(version), .header, offset: 8, "")
        }
        guard bytes.count >= CheckpointFormat.headerLength else {
            throw CheckpointError(.truncated, .header, offset: UInt64(bytes.count), "the file ends inside the 64-byte header")
        }
        // The checksum first: a flipped bit anywhere reads as corruption
        // rather than as a strange value.
        var crcReader = ByteReader(bytes, base: 0, section: .header)
        _ = try crcReader.raw(60)
        try crcReader.checkCRC(from: 0, what: "headerCRC")

        let headerLength = try r.u32()
        if headerLength != UInt32(CheckpointFormat.headerLength) {
            throw .field(.header, 12, "headerLength", expected: "64", found: headerLength)
        }
        let flags = try r.u32()
        if flags != 0 {
            throw .field(.header, 16, "flags", expected: "0", found: hex(UInt64(flags)))
        }
        let pageSize = try r.u32()
        if UInt64(pageSize) != CheckpointFormat.pageSize {
            throw .field(.header, 20, "pageSize", expected: "4096", found: pageSize)
        }
        let frameLimit = try r.u32()
        if frameLimit == 0 || UInt64(frameLimit) % CheckpointFormat.pageSize != 0 || frameLimit > CheckpointFormat.maxFrameLimit {
            throw .field(
                .header, 24, "frameLimit", expected: "a multiple of 4096 from 4096 to \(CheckpointFormat.maxFrameLimit)",
                found: frameLimit)
        }
        let kindCount = try r.u32()
        if kindCount != UInt32(CheckpointFormat.kindCount) {
            throw .field(.header, 28, "kindCount", expected: "\(CheckpointFormat.kindCount)", found: kindCount)
        }
        let fileSize = try r.u64()
        if fileSize % CheckpointFormat.chunkSize != 0 || fileSize > CheckpointFormat.maxFileSize {
            throw .field(
                .header, 32, "fileSize", expected: "a multiple of 1 GiB up to \(hex(CheckpointFormat.maxFileSize))",
                found: hex(fileSize))
        }
        let dataSize = try r.u64()
        if dataSize > fileSize {
            throw .field(.header, 40, "dataSize", expected: "at most fileSize \(hex(fileSize))", found: hex(dataSize))
        }
        let segmentCount = try r.u64()
        if segmentCount > fileSize / CheckpointFormat.pageSize {
            throw .field(
                .header, 48, "segmentCount", expected: "at most \(fileSize / CheckpointFormat.pageSize) (one per page)",
                found: segmentCount)
        }
        var header = CheckpointHeader(frameLimit: frameLimit, fileSize: fileSize, dataSize: dataSize, segmentCount: segmentCount)
        try r.zeros(4, field: "reserved")
        header.crc = try r.u32()
        return header
    }
}

func hexBytes(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined(separator: " ")
}
