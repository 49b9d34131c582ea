/// Appends little-endian integers to a byte array.
struct ByteWriter {
    var bytes: [UInt8] = []
    /// Where the record being written starts, for `field(_:)`.
    private var recordStart = 0

    init(capacity: Int = 0) {
        bytes.reserveCapacity(capacity)
    }

    /// Starts a record at the current position.
    mutating func startRecord() { recordStart = bytes.count }

    /// Checks that the next byte is `f`'s first: the encoder writes its
    /// fields in the layout's order.
    @inline(__always)
    func field(_ f: Field) {
        precondition(bytes.count - recordStart == f.offset, "ByteWriter: \(f.name) written at \(bytes.count - recordStart), not at \(f.offset)")
    }

    mutating func u32(_ v: UInt32, _ f: Field) {
        field(f)
        u32(v)
    }

    mutating func u64(_ v: UInt64, _ f: Field) {
        field(f)
        u64(v)
    }

    mutating func u8(_ v: UInt8) { bytes.append(v) }

    mutating func u32(_ v: UInt32) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func u64(_ v: UInt64) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func raw(_ v: some Sequence<UInt8>) { bytes.append(contentsOf: v) }

    /// Appends `v` as unsigned LEB128: 7 bits per byte, least significant
    /// first, the high bit set on every byte but the last.
    mutating func leb128(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func zeros(_ n: Int) { bytes.append(contentsOf: repeatElement(0, count: n)) }

    /// Appends the CRC-32C of every byte so far from `start`.
    mutating func crc(from start: Int) {
        let c = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[start...])) }
        u32(c)
    }
}

/// Reads little-endian integers from bytes taken from a checkpoint, checking
/// bounds: running out is a `.truncated` error of `section`, never a trap.
struct ByteReader {
    let bytes: [UInt8]
    /// Offset of `bytes[0]` in the checkpoint, for error messages.
    let base: UInt64
    let section: CheckpointSection
    private(set) var position = 0
    /// Where the record being read starts, for the field readers.
    private(set) var recordStart = 0

    init(_ bytes: [UInt8], base: UInt64, section: CheckpointSection) {
        self.bytes = bytes
        self.base = base
        self.section = section
    }

    /// Checkpoint offset of the next byte.
    var offset: UInt64 { base + UInt64(position) }

    /// Starts a record at the current position.
    mutating func startRecord() { recordStart = position }

    /// Checkpoint offset of field `f` of the current record.
    func offset(of f: Field) -> UInt64 { base + UInt64(recordStart + f.offset) }

    /// Checks that the next byte is `f`'s first: decoders read fields in
    /// the layout's order.
    @inline(__always)
    private func at(_ f: Field) {
        precondition(position - recordStart == f.offset, "ByteReader: \(f.name) read at \(position - recordStart), not at \(f.offset)")
    }

    mutating func u8(_ f: Field) throws(CheckpointError) -> UInt8 {
        at(f)
        return try u8()
    }

    mutating func u32(_ f: Field) throws(CheckpointError) -> UInt32 {
        at(f)
        return try u32()
    }

    mutating func u64(_ f: Field) throws(CheckpointError) -> UInt64 {
        at(f)
        return try u64()
    }

    /// Reads field `f`, which must be zero.
    mutating func zeros(_ f: Field) throws(CheckpointError) {
        at(f)
        try zeros(f.size, field: f.name)
    }

    private mutating func take(_ n: Int) throws(CheckpointError) -> Int {
        guard bytes.count - position >= n else {
            throw CheckpointError(.truncated, section, offset: offset, "needs \(n) more bytes, \(bytes.count - position) left")
        }
        let p = position
        position += n
        return p
    }

    mutating func u8() throws(CheckpointError) -> UInt8 {
        bytes[try take(1)]
    }

    mutating func u32() throws(CheckpointError) -> UInt32 { try littleEndian() }

    mutating func u64() throws(CheckpointError) -> UInt64 { try littleEndian() }

    /// Reads a little-endian integer of `T`'s width.
    private mutating func littleEndian<T: FixedWidthInteger & UnsignedInteger>() throws(CheckpointError) -> T {
        let width = T.bitWidth / 8
        let p = try take(width)
        var v: T = 0
        for i in 0..<width {
            v |= T(bytes[p + i]) << (8 * i)
        }
        return v
    }

    /// Reads an unsigned LEB128 number that must end before `limit` (a
    /// position), fit 64 bits and use its shortest encoding. The field's
    /// name is made only for an error (tables have one number per page).
    mutating func leb128(field: @autoclosure () -> String, limit: Int) throws(CheckpointError) -> UInt64 {
        let at = offset
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < limit else {
                throw CheckpointError.field(section, at, field(), expected: "a LEB128 number inside the run table", found: "the table's end")
            }
            let byte = bytes[position]
            position += 1
            let bits = UInt64(byte & 0x7F)
            if shift == 63 && bits > 1 || shift > 63 {
                throw CheckpointError.field(section, at, field(), expected: "a LEB128 number that fits 64 bits", found: "more bits")
            }
            value |= bits << shift
            if byte & 0x80 == 0 {
                if byte == 0 && shift > 0 {
                    throw CheckpointError.field(section, at, field(), expected: "the shortest LEB128 encoding", found: "a trailing zero byte")
                }
                return value
            }
            shift += 7
        }
    }

    mutating func raw(_ n: Int) throws(CheckpointError) -> ArraySlice<UInt8> {
        let p = try take(n)
        return bytes[p..<p + n]
    }

    /// Reads `n` bytes that must be zero; `field` names them in the error.
    mutating func zeros(_ n: Int, field: String) throws(CheckpointError) {
        let at = offset
        let slice = try raw(n)
        if slice.contains(where: { $0 != 0 }) {
            throw CheckpointError.field(section, at, field, expected: "zero", found: slice.map { String($0, radix: 16) }.joined(separator: " "))
        }
    }

    /// Reads a section's closing 8 bytes, a CRC-32C (named `what`) that must
    /// equal `computed` and 4 reserved zero bytes.
    mutating func checkClosingCRC(_ computed: UInt32, what: String) throws(CheckpointError) {
        let at = offset
        let stored = try u32()
        if stored != computed {
            throw CheckpointError(
                .checksumMismatch, section, offset: at,
                "\(what): stored \(hex(UInt64(stored))), computed \(hex(UInt64(computed)))")
        }
        try zeros(4, field: "reserved")
    }

    /// Reads a CRC-32C and checks it against the bytes from `start` up to
    /// the CRC field.
    mutating func checkCRC(from start: Int, what: String) throws(CheckpointError) {
        let end = position
        let at = offset
        let stored = try u32()
        let actual = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[start..<end])) }
        if stored != actual {
            throw CheckpointError(
                .checksumMismatch, section, offset: at,
                "\(what): stored \(hex(UInt64(stored))), computed \(hex(UInt64(actual)))")
        }
    }
}
