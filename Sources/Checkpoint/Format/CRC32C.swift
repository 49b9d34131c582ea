import CCRC32C

/// CRC-32C (Castagnoli), the checksum that guards every checkpoint section.
///
/// Checksums chain: start from 0 (the default) and pass the previous result
/// as `continuing` to extend it over the next piece, so
/// `checksum(b, continuing: checksum(a))` equals the checksum of `a`
/// followed by `b`. The check value of the ASCII bytes "123456789" is
/// `0xE3069283`.
public enum CRC32C {
    /// The checksum of `bytes`, extending `crc`.
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress else {
            return crc
        }
        return pg_crc32c(crc, base, bytes.count)
    }

    /// The checksum of `bytes`, extending `crc`. Contiguous collections
    /// (arrays, `Data`-like buffers) are read in place; other sequences are
    /// copied through a small buffer.
    public static func checksum(_ bytes: some Sequence<UInt8>, continuing crc: UInt32 = 0) -> UInt32 {
        if let result = bytes.withContiguousStorageIfAvailable({ buffer in
            checksum(UnsafeRawBufferPointer(buffer), continuing: crc)
        }) {
            return result
        }
        var crc = crc
        var chunk: [UInt8] = []
        chunk.reserveCapacity(4096)
        for byte in bytes {
            chunk.append(byte)
            if chunk.count == 4096 {
                crc = chunk.withUnsafeBytes { checksum($0, continuing: crc) }
                chunk.removeAll(keepingCapacity: true)
            }
        }
        return chunk.withUnsafeBytes { checksum($0, continuing: crc) }
    }

    /// Whether `checksum` uses the CPU's CRC-32C instruction (SSE 4.2) on
    /// this machine.
    public static var isHardwareAccelerated: Bool {
        pg_crc32c_hardware_available() != 0
    }

    /// The checksum computed by the portable table code even when the
    /// instruction is available; tests compare it with `checksum`.
    static func portableChecksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress else {
            return crc
        }
        return pg_crc32c_portable(crc, base, bytes.count)
    }
}
