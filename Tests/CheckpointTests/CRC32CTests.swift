import XCTest
import Workloads

@testable import Checkpoint

final class CRC32CTests: XCTestCase {
    private static let seed: UInt64 = 0xC5C3_2C00_2024_0001

    // MARK: Known values

    func testCheckValue() {
        let bytes = Array("123456789".utf8)
        XCTAssertEqual(CRC32C.checksum(bytes), 0xE306_9283)
        bytes.withUnsafeBytes { XCTAssertEqual(CRC32C.portableChecksum($0), 0xE306_9283) }
    }

    func testEmptyInput() {
        XCTAssertEqual(CRC32C.checksum([UInt8]()), 0)
        XCTAssertEqual(CRC32C.checksum(UnsafeRawBufferPointer(start: nil, count: 0)), 0)
        XCTAssertEqual(CRC32C.checksum([UInt8](), continuing: 0xDEAD_BEEF), 0xDEAD_BEEF)
        XCTAssertEqual(CRC32C.portableChecksum(UnsafeRawBufferPointer(start: nil, count: 0), continuing: 7), 7)
    }

    /// The 32-byte vectors of RFC 3720 (iSCSI), appendix B.4.
    func testISCSIVectors() {
        let vectors: [(String, [UInt8], UInt32)] = [
            ("zeros", [UInt8](repeating: 0, count: 32), 0x8A91_36AA),
            ("ones", [UInt8](repeating: 0xFF, count: 32), 0x62A8_AB43),
            ("incrementing", (0..<32).map { UInt8($0) }, 0x46DD_794E),
            ("decrementing", (0..<32).reversed().map { UInt8($0) }, 0x113F_DB5C),
        ]
        for (name, bytes, expected) in vectors {
            XCTAssertEqual(CRC32C.checksum(bytes), expected, name)
            bytes.withUnsafeBytes { XCTAssertEqual(CRC32C.portableChecksum($0), expected, name) }
        }
    }

    /// Sequences without contiguous storage go through the chunked copy,
    /// including one longer than its 4 KiB chunk.
    func testNonContiguousSequences() {
        XCTAssertEqual(CRC32C.checksum(UInt8(0)...UInt8(31)), 0x46DD_794E)
        let long = (0..<10_000).lazy.map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        XCTAssertEqual(CRC32C.checksum(long), CRC32C.checksum(Array(long)))
        XCTAssertEqual(CRC32C.checksum(long, continuing: 99), CRC32C.checksum(Array(long), continuing: 99))
    }

    // MARK: Hardware and portable code agree

    /// Every length up to 100, the lengths around the interleaving block
    /// boundaries (3 x 256 and 3 x 8192 bytes), a few large ones, and random
    /// ones, each at every alignment within 16 bytes.
    func testHardwareMatchesPortable() {
        print("CRC32CTests seed \(Self.seed); hardware \(CRC32C.isHardwareAccelerated)")
        var random = SplitMix64(seed: Self.seed)
        let buffer = random.bytes(200_000 + 16)

        var lengths = Array(0...100)
        for boundary in [256, 768, 8192, 3 * 8192, 2 * 3 * 8192] {
            lengths += (boundary - 9)...(boundary + 9)
        }
        lengths += [4096, 65_536, 100_003, 200_000]
        for _ in 0..<200 {
            lengths.append(Int(random.next() % 200_000))
        }

        buffer.withUnsafeBytes { all in
            for length in lengths {
                for offset in 0..<16 {
                    let slice = UnsafeRawBufferPointer(rebasing: all[offset..<(offset + length)])
                    let start = UInt32(truncatingIfNeeded: random.next())
                    let fast = CRC32C.checksum(slice, continuing: start)
                    let portable = CRC32C.portableChecksum(slice, continuing: start)
                    if fast != portable {
                        XCTFail("seed \(Self.seed): length \(length) offset \(offset) start \(start): \(fast) != \(portable)")
                        return
                    }
                }
            }
        }
    }

    // MARK: Chaining

    func testChainingEqualsWholeBuffer() {
        var random = SplitMix64(seed: Self.seed &+ 1)
        for round in 0..<200 {
            let count = Int(random.next() % 70_000)
            let bytes = random.bytes(count)
            let whole = CRC32C.checksum(bytes)
            let split = count == 0 ? 0 : Int(random.next() % UInt64(count + 1))
            bytes.withUnsafeBytes { all in
                let a = UnsafeRawBufferPointer(rebasing: all[..<split])
                let b = UnsafeRawBufferPointer(rebasing: all[split...])
                XCTAssertEqual(
                    CRC32C.checksum(b, continuing: CRC32C.checksum(a)), whole,
                    "seed \(Self.seed) round \(round): \(count) bytes split at \(split)")
                XCTAssertEqual(
                    CRC32C.portableChecksum(b, continuing: CRC32C.portableChecksum(a)), whole,
                    "seed \(Self.seed) round \(round): portable, \(count) bytes split at \(split)")

                // Many small pieces of random sizes.
                var crc: UInt32 = 0
                var position = 0
                while position < count {
                    let piece = min(count - position, Int(random.next() % 300))
                    crc = CRC32C.checksum(
                        UnsafeRawBufferPointer(rebasing: all[position..<(position + piece)]), continuing: crc)
                    position += piece
                }
                XCTAssertEqual(crc, whole, "seed \(Self.seed) round \(round): pieces")
            }
        }
    }
}

