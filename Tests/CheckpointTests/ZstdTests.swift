import CZstd
import XCTest
import Workloads

@testable import Checkpoint

final class ZstdTests: XCTestCase {
    private static let seed: UInt64 = 0x25D0_2024_0000_0017

    // MARK: Round trips

    func testRoundTripsAcrossLevelsSizesAndData() throws {
        print("ZstdTests seed \(Self.seed)")
        var random = SplitMix64(seed: Self.seed)
        var decompressor = try ZstdDecompressor()
        for level: Int32 in [-5, 1, 3, 9, 19] {
            var compressor = try ZstdCompressor(level: level)
            for count in [0, 1, 100, 4096, 131_079, 1 << 20] {
                if level >= 19 && count > 131_079 {
                    continue
                }
                for kind in DataKind.allCases {
                    let original = kind.make(count, &random)
                    let frame = try compress(original, with: &compressor)
                    let restored = try decompress(frame, count: count, with: &decompressor)
                    XCTAssertEqual(
                        restored, original, "seed \(Self.seed): level \(level), \(count) bytes of \(kind)")
                    if kind == .zeros && count >= 4096 {
                        XCTAssertLessThan(frame.count, count / 50, "zeros must compress well")
                    }
                }
            }
        }
    }

    /// Empty input is legal: it compresses to a small frame that declares a
    /// content size of 0 and decompresses into an empty buffer.
    func testEmptyInput() throws {
        var compressor = try ZstdCompressor(level: 1)
        var decompressor = try ZstdDecompressor()
        let frame = try compress([], with: &compressor)
        XCTAssertGreaterThan(frame.count, 0)
        XCTAssertEqual(try decompress(frame, count: 0, with: &decompressor), [])
        XCTAssertThrowsError(try decompress(frame, count: 1, with: &decompressor)) { error in
            XCTAssertEqual(error as? ZstdError, .contentSizeMismatch(declared: 0, expected: 1))
        }
    }

    func testLevelsOutsideTheSupportedRangeAreRejected() {
        let supported = ZstdCompressor.supportedLevels
        XCTAssertTrue(supported.contains(1) && supported.contains(19))
        for level in [supported.upperBound + 1, supported.lowerBound - 1, Int32.max, Int32.min] {
            XCTAssertThrowsError(try { _ = try ZstdCompressor(level: level) }()) { error in
                XCTAssertEqual(error as? ZstdError, .invalidLevel(level, supported: supported))
            }
        }
    }

    func testCompressIntoTooSmallDestination() throws {
        var compressor = try ZstdCompressor(level: 1)
        var random = SplitMix64(seed: Self.seed &+ 1)
        let original = random.bytes(10_000)
        var destination = [UInt8](repeating: 0, count: 100)
        XCTAssertThrowsError(
            try original.withUnsafeBytes { source in
                try destination.withUnsafeMutableBytes { try compressor.compress(source, into: $0) }
            }
        ) { error in
            XCTAssertEqual(libraryCode(error), Int(ZSTD_error_dstSize_tooSmall.rawValue), "\(error)")
        }
        XCTAssertGreaterThanOrEqual(ZstdCompressor.compressBound(10_000), 10_000)
        XCTAssertGreaterThan(ZstdCompressor.compressBound(0), 0)
    }

    func testDecompressorRejectsBadWindowLogMax() {
        XCTAssertThrowsError(try { _ = try ZstdDecompressor(windowLogMax: 40) }()) { error in
            XCTAssertEqual(libraryCode(error), Int(ZSTD_error_parameter_outOfBound.rawValue), "\(error)")
        }
    }

    // MARK: Malformed input

    func testEmptySourceIsRejected() throws {
        try expectFailure([], count: 0) { error in
            XCTAssertEqual(libraryCode(error), Int(ZSTD_error_srcSize_wrong.rawValue), "\(error)")
        }
    }

    func testGarbageIsRejected() throws {
        var random = SplitMix64(seed: Self.seed &+ 2)
        for round in 0..<100 {
            var garbage = random.bytes(1 + Int(random.next() % 2000))
            garbage[0] = 0x00  // no zstd or skippable magic starts with 0
            try expectFailure(garbage, count: 1000) { error in
                XCTAssertEqual(
                    libraryCode(error), Int(ZSTD_error_prefix_unknown.rawValue),
                    "seed \(Self.seed) round \(round): \(error)")
            }
        }
    }

    /// Every proper prefix of a frame is rejected by the frame scan, before
    /// any decoding.
    func testEveryTruncationIsRejected() throws {
        var random = SplitMix64(seed: Self.seed &+ 10)
        let original = Array(String(repeating: "checkpoint page ", count: 200).utf8) + random.bytes(300)
        let frame = try compress(original, level: 3)
        for length in 0..<frame.count {
            try expectFailure(Array(frame[..<length]), count: original.count) { error in
                guard case let .library(function, code, _) = error as? ZstdError else {
                    return XCTFail("prefix of \(length) bytes: \(error)")
                }
                XCTAssertEqual(function, "ZSTD_findFrameCompressedSize", "prefix of \(length) bytes")
                XCTAssertEqual(code, Int(ZSTD_error_srcSize_wrong.rawValue), "prefix of \(length) bytes")
            }
        }
    }

    /// Without a zstd checksum a flipped literal byte can decode "fine" to
    /// other content (the format's CRC-32C catches that); what matters here
    /// is that no flip traps or writes outside the destination.
    func testEveryByteFlipIsContained() throws {
        var random = SplitMix64(seed: Self.seed &+ 3)
        let original = Array(String(repeating: "abcabcabd", count: 100).utf8) + random.bytes(200)
        let frame = try compress(original, level: 3)
        var decompressor = try ZstdDecompressor()
        var failures = 0
        for index in frame.indices {
            for mask: UInt8 in [0x01, 0x80, 0xFF] {
                var damaged = frame
                damaged[index] ^= mask
                do {
                    _ = try decompressGuarded(damaged, count: original.count, with: &decompressor)
                } catch is ZstdError {
                    failures += 1
                }
            }
        }
        XCTAssertGreaterThan(failures, 0, "some flips must be detected")
        print("ZstdTests: \(failures) of \(3 * frame.count) byte flips detected by zstd alone")
    }

    func testTwoConcatenatedFramesAreRejected() throws {
        let first = try compress(Array("first frame".utf8), level: 1)
        let second = try compress(Array("second frame".utf8), level: 1)
        try expectFailure(first + second, count: 11) { error in
            XCTAssertEqual(
                error as? ZstdError, .trailingData(frameSize: first.count, inputSize: first.count + second.count))
        }
    }

    func testTrailingBytesAreRejected() throws {
        let frame = try compress(Array("payload".utf8), level: 1)
        for trailer: [UInt8] in [[0], [0, 0, 0], [0x28, 0xB5, 0x2F, 0xFD]] {
            try expectFailure(frame + trailer, count: 7) { error in
                XCTAssertEqual(
                    error as? ZstdError, .trailingData(frameSize: frame.count, inputSize: frame.count + trailer.count))
            }
        }
        // A skippable frame after the real one is trailing data too.
        try expectFailure(frame + skippableFrame(payload: [1, 2, 3]), count: 7) { error in
            XCTAssertEqual(error as? ZstdError, .trailingData(frameSize: frame.count, inputSize: frame.count + 11))
        }
    }

    func testSkippableFrameIsRejected() throws {
        try expectFailure(skippableFrame(payload: []), count: 0) { error in
            XCTAssertEqual(error as? ZstdError, .skippableFrame)
        }
        try expectFailure(skippableFrame(payload: [1, 2, 3, 4]), count: 4) { error in
            XCTAssertEqual(error as? ZstdError, .skippableFrame)
        }
    }

    func testWrongDestinationSizeIsRejected() throws {
        var random = SplitMix64(seed: Self.seed &+ 4)
        let original = random.bytes(5000)
        let frame = try compress(original, level: 1)
        for count in [0, 4999, 5001, 10_000] {
            try expectFailure(frame, count: count) { error in
                XCTAssertEqual(error as? ZstdError, .contentSizeMismatch(declared: 5000, expected: count))
            }
        }
    }

    func testMissingContentSizeIsRejected() throws {
        let original = Array(repeating: UInt8(7), count: 5000)
        let frame = try rawCompress(original, parameters: [(ZSTD_c_contentSizeFlag, 0)])
        try expectFailure(frame, count: 5000) { error in
            XCTAssertEqual(error as? ZstdError, .contentSizeMissing)
        }
    }

    // MARK: Window limit

    /// A frame whose window (1 MiB) exceeds the decompressor's limit is
    /// refused, and accepted once the limit allows it.
    func testWindowAboveTheLimitIsRejected() throws {
        let original = mixedData(3 << 20, seed: Self.seed &+ 5)
        let frame = try rawCompress(original, parameters: [(ZSTD_c_windowLog, 20)])
        XCTAssertEqual(try frameHeader(frame).windowSize, 1 << 20)

        try expectFailure(frame, count: original.count, windowLogMax: 19) { error in
            XCTAssertEqual(error as? ZstdError, .windowTooLarge(windowSize: 1 << 20, limit: 1 << 19))
        }
        var decompressor = try ZstdDecompressor(windowLogMax: 20)
        XCTAssertEqual(try decompress(frame, count: original.count, with: &decompressor), original)
    }

    /// A header that claims a 256 MiB window (2^28) is refused by the default
    /// limit of 2^27, although libzstd's one-shot decoder would decode it: it
    /// ignores ZSTD_d_windowLogMax. The frame is a real 2^20-window frame
    /// whose window descriptor is patched, so a limit of 28 decodes it.
    func testHeaderClaimingA256MiBWindowIsRejected() throws {
        let original = mixedData(3 << 20, seed: Self.seed &+ 6)
        var frame = try rawCompress(original, parameters: [(ZSTD_c_windowLog, 20)])
        let layout = try XCTUnwrap(HeaderLayout(frame))
        let descriptor = try XCTUnwrap(layout.windowDescriptorOffset)
        frame[descriptor] = (28 - 10) << 3  // exponent 18, mantissa 0: 2^(10 + 18)
        XCTAssertEqual(try frameHeader(frame).windowSize, 1 << 28)

        try expectFailure(frame, count: original.count) { error in
            XCTAssertEqual(error as? ZstdError, .windowTooLarge(windowSize: 1 << 28, limit: 1 << 27))
        }
        var lenient = try ZstdDecompressor(windowLogMax: 28)
        XCTAssertEqual(try decompress(frame, count: original.count, with: &lenient), original)
    }

    /// A single-segment frame's window is its content size, as in libzstd's
    /// streaming decoder.
    func testSingleSegmentWindowIsItsContentSize() throws {
        let original = mixedData(200_000, seed: Self.seed &+ 7)
        let frame = try compress(original, level: 1)
        let layout = try XCTUnwrap(HeaderLayout(frame))
        XCTAssertTrue(layout.singleSegment)
        try expectFailure(frame, count: original.count, windowLogMax: 17) { error in
            XCTAssertEqual(error as? ZstdError, .windowTooLarge(windowSize: 200_000, limit: 1 << 17))
        }
        var decompressor = try ZstdDecompressor(windowLogMax: 18)
        XCTAssertEqual(try decompress(frame, count: original.count, with: &decompressor), original)
    }

    // MARK: Bombs

    /// A frame whose real content (1 MiB) dwarfs the destination (4 KiB)
    /// but that does not declare its size is refused before decoding.
    func testUndeclaredBombIsRejectedBeforeDecoding() throws {
        let original = [UInt8](repeating: 0, count: 1 << 20)
        let frame = try rawCompress(original, parameters: [(ZSTD_c_contentSizeFlag, 0)])
        XCTAssertLessThan(frame.count, 1000)
        var decompressor = try ZstdDecompressor()
        XCTAssertThrowsError(try decompressGuarded(frame, count: 4096, with: &decompressor)) { error in
            XCTAssertEqual(error as? ZstdError, .contentSizeMissing)
        }
    }

    /// Frames that claim 1000 bytes of content but hold 64 KiB: the header
    /// checks pass, so libzstd decodes into the 1000-byte destination and
    /// must stop at its end. Both header shapes: single segment, and a
    /// separate 1 KiB window.
    func testLyingContentSizeNeverWritesPastTheDestination() throws {
        for (name, parameters) in [
            ("single segment", [(ZSTD_c_compressionLevel, Int32(3))]),
            ("1 KiB window", [(ZSTD_c_windowLog, Int32(10))]),
        ] {
            for kind in DataKind.allCases {
                var random = SplitMix64(seed: Self.seed &+ 8)
                let original = kind.make(65_536, &random)
                var frame = try rawCompress(original, parameters: parameters)
                try patchContentSize(&frame, to: 1000)
                XCTAssertEqual(try frameHeader(frame).frameContentSize, 1000, "\(name), \(kind)")

                var decompressor = try ZstdDecompressor()
                XCTAssertThrowsError(
                    try decompressGuarded(frame, count: 1000, with: &decompressor), "\(name), \(kind)"
                ) { error in
                    guard case .library = error as? ZstdError else {
                        return XCTFail("\(name), \(kind): \(error)")
                    }
                }
            }
        }
    }

    /// The opposite lie: a frame that claims more content than it holds.
    func testContentShorterThanDeclaredIsRejected() throws {
        let original = mixedData(65_536, seed: Self.seed &+ 9)
        var frame = try compress(original, level: 1)
        try patchContentSize(&frame, to: 65_000 + 536 + 100)
        var decompressor = try ZstdDecompressor()
        XCTAssertThrowsError(try decompressGuarded(frame, count: 65_636, with: &decompressor)) { error in
            switch error as? ZstdError {
            case .library?, .outputSizeMismatch?:
                break
            default:
                XCTFail("\(error)")
            }
        }
    }

    // MARK: Descriptions

    func testDescriptionsAreOneLineStartingWithZstd() throws {
        var errors: [ZstdError] = [
            .invalidLevel(99, supported: -7...22),
            .skippableFrame,
            .contentSizeMissing,
            .contentSizeMismatch(declared: 1, expected: 2),
            .windowTooLarge(windowSize: 1 << 28, limit: 1 << 27),
            .trailingData(frameSize: 10, inputSize: 13),
            .outputSizeMismatch(produced: 1, expected: 2),
        ]
        try expectFailure([0, 1, 2, 3, 4, 5, 6, 7, 8], count: 1) { errors.append($0 as! ZstdError) }
        for error in errors {
            XCTAssertTrue(error.description.hasPrefix("zstd: "), error.description)
            XCTAssertFalse(error.description.contains("\n"), error.description)
        }
        XCTAssertEqual(
            ZstdError.trailingData(frameSize: 10, inputSize: 13).description,
            "zstd: 3 bytes follow the 10-byte frame (input is 13 bytes)")
        XCTAssertTrue(errors.last!.description.hasPrefix("zstd: ZSTD_findFrameCompressedSize failed: "))
    }

    // MARK: Helpers

    private enum DataKind: CaseIterable {
        case random, zeros, text, mixed

        func make(_ count: Int, _ random: inout SplitMix64) -> [UInt8] {
            switch self {
            case .random:
                return random.bytes(count)
            case .zeros:
                return [UInt8](repeating: 0, count: count)
            case .text:
                let words = ["page", "segment", "memory ", "file", "zstd,", "the ", "of", "\n", "checkpoint"]
                var text: [UInt8] = []
                text.reserveCapacity(count + 16)
                while text.count < count {
                    text += words[Int(random.next() % UInt64(words.count))].utf8
                    text.append(0x20)
                }
                return Array(text[..<count])
            case .mixed:
                return mixedData(count, seed: random.next())
            }
        }
    }

    private func compress(_ original: [UInt8], with compressor: inout ZstdCompressor) throws -> [UInt8] {
        var frame = [UInt8](repeating: 0, count: ZstdCompressor.compressBound(original.count))
        let size = try original.withUnsafeBytes { source in
            try frame.withUnsafeMutableBytes { try compressor.compress(source, into: $0) }
        }
        return Array(frame[..<size])
    }

    private func compress(_ original: [UInt8], level: Int32) throws -> [UInt8] {
        var compressor = try ZstdCompressor(level: level)
        return try compress(original, with: &compressor)
    }

    private func decompress(
        _ frame: [UInt8], count: Int, with decompressor: inout ZstdDecompressor
    ) throws -> [UInt8] {
        var output = [UInt8](repeating: 0xA5, count: count)
        try frame.withUnsafeBytes { source in
            try output.withUnsafeMutableBytes { try decompressor.decompress(source, into: $0) }
        }
        return output
    }

    /// Decompresses into `count` bytes in the middle of a larger buffer and
    /// checks that the guard bytes on both sides are untouched, whether or
    /// not decompression throws.
    private func decompressGuarded(
        _ frame: [UInt8], count: Int, with decompressor: inout ZstdDecompressor,
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> [UInt8] {
        let guardSize = 4096
        let canary: UInt8 = 0x5A
        var buffer = [UInt8](repeating: canary, count: guardSize + count + guardSize)
        defer {
            let intact =
                buffer[..<guardSize].allSatisfy { $0 == canary }
                && buffer[(guardSize + count)...].allSatisfy { $0 == canary }
            XCTAssertTrue(intact, "decompression wrote outside its destination", file: file, line: line)
        }
        try frame.withUnsafeBytes { source in
            try buffer.withUnsafeMutableBytes { all in
                let destination = UnsafeMutableRawBufferPointer(rebasing: all[guardSize..<(guardSize + count)])
                try decompressor.decompress(source, into: destination)
            }
        }
        return Array(buffer[guardSize..<(guardSize + count)])
    }

    private func expectFailure(
        _ frame: [UInt8], count: Int, windowLogMax: Int32 = 27,
        file: StaticString = #filePath, line: UInt = #line,
        _ check: (Error) -> Void
    ) throws {
        var decompressor = try ZstdDecompressor(windowLogMax: windowLogMax)
        do {
            _ = try decompressGuarded(frame, count: count, with: &decompressor, file: file, line: line)
            XCTFail("decompression succeeded", file: file, line: line)
        } catch {
            check(error)
        }
    }

    private func libraryCode(_ error: Error) -> Int? {
        if case let .library(_, code, _) = error as? ZstdError {
            return code
        }
        return nil
    }

    /// Compresses with libzstd directly, to make frames the checkpoint
    /// writer never makes (no content size, chosen window).
    private func rawCompress(_ original: [UInt8], parameters: [(ZSTD_cParameter, Int32)]) throws -> [UInt8] {
        let context = try XCTUnwrap(ZSTD_createCCtx())
        defer { ZSTD_freeCCtx(context) }
        for (parameter, value) in parameters {
            XCTAssertEqual(ZSTD_isError(ZSTD_CCtx_setParameter(context, parameter, value)), 0)
        }
        var frame = [UInt8](repeating: 0, count: ZSTD_compressBound(original.count))
        let size = original.withUnsafeBytes { source in
            frame.withUnsafeMutableBytes {
                ZSTD_compress2(context, $0.baseAddress, $0.count, source.baseAddress, source.count)
            }
        }
        XCTAssertEqual(ZSTD_isError(size), 0, String(cString: ZSTD_getErrorName(size)))
        return Array(frame[..<size])
    }

    private func frameHeader(_ frame: [UInt8]) throws -> ZSTD_frameHeader {
        var header = ZSTD_frameHeader()
        let result = frame.withUnsafeBytes { ZSTD_getFrameHeader(&header, $0.baseAddress, $0.count) }
        XCTAssertEqual(result, 0)
        return header
    }

    /// Where the fields of a zstd frame header sit (RFC 8878, 3.1.1.1).
    private struct HeaderLayout {
        var singleSegment: Bool
        var windowDescriptorOffset: Int?
        var contentSizeOffset: Int
        var contentSizeLength: Int

        init?(_ frame: [UInt8]) {
            guard frame.count >= 6, frame[0..<4] == [0x28, 0xB5, 0x2F, 0xFD] else {
                return nil
            }
            let descriptor = frame[4]
            singleSegment = descriptor & 0x20 != 0
            windowDescriptorOffset = singleSegment ? nil : 5
            let dictionaryIDLength = [0, 1, 2, 4][Int(descriptor & 0x03)]
            contentSizeOffset = 5 + (singleSegment ? 0 : 1) + dictionaryIDLength
            contentSizeLength = [singleSegment ? 1 : 0, 2, 4, 8][Int(descriptor >> 6)]
        }
    }

    /// Rewrites the declared content size in place, keeping the field's
    /// width (a 2-byte field stores the size minus 256).
    private func patchContentSize(_ frame: inout [UInt8], to size: UInt64) throws {
        let layout = try XCTUnwrap(HeaderLayout(frame))
        var stored = size
        switch layout.contentSizeLength {
        case 1: XCTAssertLessThan(size, 256)
        case 2:
            XCTAssertTrue((256...65_791).contains(size))
            stored -= 256
        case 4, 8: break
        default: return XCTFail("frame has no content size field")
        }
        for index in 0..<layout.contentSizeLength {
            frame[layout.contentSizeOffset + index] = UInt8(truncatingIfNeeded: stored >> (8 * UInt64(index)))
        }
    }

    private func skippableFrame(payload: [UInt8]) -> [UInt8] {
        let magic: UInt32 = 0x184D_2A50
        let size = UInt32(payload.count)
        return withUnsafeBytes(of: magic.littleEndian, Array.init)
            + withUnsafeBytes(of: size.littleEndian, Array.init) + payload
    }
}

/// Compressible but not trivial: runs of text, zeros, repeats of earlier
/// bytes at near and far distances, and random noise, in random order.
private func mixedData(_ count: Int, seed: UInt64) -> [UInt8] {
    var random = SplitMix64(seed: seed)
    var data: [UInt8] = []
    data.reserveCapacity(count + 4096)
    let text = Array("The page allocator hands out ranges of a memory file; ".utf8)
    while data.count < count {
        let run = 16 + Int(random.next() % 4000)
        switch random.next() % 4 {
        case 0:
            for index in 0..<run { data.append(text[index % text.count]) }
        case 1:
            data += repeatElement(0, count: run)
        case 2 where data.count > run:
            let start = Int(random.next() % UInt64(data.count - run))
            data += data[start..<(start + run)]
        default:
            data += random.bytes(run / 4)
        }
    }
    return Array(data[..<count])
}

