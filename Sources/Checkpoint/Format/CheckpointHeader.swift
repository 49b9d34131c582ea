/// The fixed header at the start of a checkpoint.
public struct CheckpointHeader: Hashable, Sendable {
    /// The format version (1 or 2).
    public var version: UInt32
    /// The largest uncompressed size of any frame.
    public var frameLimit: UInt32
    /// The size of the saved MemoryFile.
    public var fileSize: UInt64
    /// The saved memory's own length: `fileSize` for a MemoryFile, the
    /// image's length for a raw image.
    public var dataSize: UInt64
    /// Segments in the segment table.
    public var segmentCount: UInt64
    /// The header's CRC, which the trailer repeats. Set by `encoded()` and
    /// `decode(_:)`.
    public internal(set) var crc: UInt32 = 0

    public init(
        version: UInt32 = CheckpointFormat.version, frameLimit: UInt32, fileSize: UInt64, dataSize: UInt64, segmentCount: UInt64
    ) {
        self.version = version
        self.frameLimit = frameLimit
        self.fileSize = fileSize
        self.dataSize = dataSize
        self.segmentCount = segmentCount
    }

    /// The end of the saved memory's own length, rounded up to a page: no
    /// stored page lies beyond it.
    public var dataEnd: UInt64 {
        (dataSize + CheckpointFormat.pageSize - 1) / CheckpointFormat.pageSize * CheckpointFormat.pageSize
    }

    /// Version 1: length of the metadata block (the segment table and its
    /// closing CRC), which follows the header.
    var metadataLength: UInt64 {
        segmentCount * UInt64(SegmentRecordLayout.recordLength) + UInt64(ClosingLayout.recordLength)
    }

    mutating func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: HeaderLayout.recordLength)
        w.field(HeaderLayout.magic)
        w.raw(CheckpointFormat.magic)
        w.u32(version, HeaderLayout.version)
        w.u32(UInt32(HeaderLayout.recordLength), HeaderLayout.headerLength)
        w.u32(0, HeaderLayout.flags)
        w.u32(UInt32(CheckpointFormat.pageSize), HeaderLayout.pageSize)
        w.u32(frameLimit, HeaderLayout.frameLimit)
        w.u32(UInt32(CheckpointFormat.kindCount), HeaderLayout.kindCount)
        w.u64(fileSize, HeaderLayout.fileSize)
        w.u64(dataSize, HeaderLayout.dataSize)
        w.u64(segmentCount, HeaderLayout.segmentCount)
        w.u32(0, HeaderLayout.reserved)
        w.field(HeaderLayout.headerCRC)
        w.crc(from: 0)
        crc = w.bytes.withUnsafeBytes { $0.load(fromByteOffset: HeaderLayout.headerCRC.offset, as: UInt32.self).littleEndian }
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
        _ = try r.raw(HeaderLayout.magic.size)
        let version = try r.u32(HeaderLayout.version)
        if !CheckpointFormat.versionsRead.contains(version) {
            throw CheckpointError(.unsupportedVersion(version), .header, offset: UInt64(HeaderLayout.version.offset), "")
        }
        guard bytes.count >= HeaderLayout.recordLength else {
            throw CheckpointError(.truncated, .header, offset: UInt64(bytes.count), "the file ends inside the 64-byte header")
        }
        // The checksum first: a flipped bit anywhere reads as corruption
        // rather than as a strange value.
        var crcReader = ByteReader(bytes, base: 0, section: .header)
        _ = try crcReader.raw(HeaderLayout.headerCRC.offset)
        try crcReader.checkCRC(from: 0, what: HeaderLayout.headerCRC.name)

        let headerLength = try r.u32(HeaderLayout.headerLength)
        if headerLength != UInt32(HeaderLayout.recordLength) {
            throw .field(r, HeaderLayout.headerLength, expected: "64", found: headerLength)
        }
        let flags = try r.u32(HeaderLayout.flags)
        if flags != 0 {
            throw .field(r, HeaderLayout.flags, expected: "0", found: hex(UInt64(flags)))
        }
        let pageSize = try r.u32(HeaderLayout.pageSize)
        if UInt64(pageSize) != CheckpointFormat.pageSize {
            throw .field(r, HeaderLayout.pageSize, expected: "4096", found: pageSize)
        }
        let frameLimit = try r.u32(HeaderLayout.frameLimit)
        if frameLimit == 0 || UInt64(frameLimit) % CheckpointFormat.pageSize != 0 || frameLimit > CheckpointFormat.maxFrameLimit {
            throw .field(
                r, HeaderLayout.frameLimit, expected: "a multiple of 4096 from 4096 to \(CheckpointFormat.maxFrameLimit)",
                found: frameLimit)
        }
        let kindCount = try r.u32(HeaderLayout.kindCount)
        if kindCount != UInt32(CheckpointFormat.kindCount) {
            throw .field(r, HeaderLayout.kindCount, expected: "\(CheckpointFormat.kindCount)", found: kindCount)
        }
        let fileSize = try r.u64(HeaderLayout.fileSize)
        if fileSize % CheckpointFormat.chunkSize != 0 || fileSize > CheckpointFormat.maxFileSize {
            throw .field(
                r, HeaderLayout.fileSize, expected: "a multiple of 1 GiB up to \(hex(CheckpointFormat.maxFileSize))",
                found: hex(fileSize))
        }
        let dataSize = try r.u64(HeaderLayout.dataSize)
        if dataSize > fileSize {
            throw .field(r, HeaderLayout.dataSize, expected: "at most fileSize \(hex(fileSize))", found: hex(dataSize))
        }
        let segmentCount = try r.u64(HeaderLayout.segmentCount)
        if segmentCount > fileSize / CheckpointFormat.pageSize {
            throw .field(
                r, HeaderLayout.segmentCount, expected: "at most \(fileSize / CheckpointFormat.pageSize) (one per page)",
                found: segmentCount)
        }
        var header = CheckpointHeader(
            version: version, frameLimit: frameLimit, fileSize: fileSize, dataSize: dataSize, segmentCount: segmentCount)
        try r.zeros(HeaderLayout.reserved)
        header.crc = try r.u32(HeaderLayout.headerCRC)
        return header
    }
}

func hexBytes(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined(separator: " ")
}

/// `bytes` as lowercase hexadecimal digits, without separators.
func hexDigits(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined()
}
