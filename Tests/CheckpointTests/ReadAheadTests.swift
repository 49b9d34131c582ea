import XCTest
@testable import Checkpoint
@testable import PGAlloc
import Workloads

/// The read-ahead of an object read in order (`ReadAhead`) and the
/// prefetch of scattered ranges (`RangePrefetch`), over an input in memory
/// that records every read and can fail one.
final class ReadAheadTests: XCTestCase {
    /// An input in memory, read as an object would be: with a plan.
    final class MemoryInput: RandomAccessInput, @unchecked Sendable {
        let name = "memory"
        let bytes: [UInt8]
        let plan: ReadAheadPlan
        /// A read that covers this offset fails.
        let failAt: UInt64?
        private let log = StateLock<[(offset: UInt64, count: Int)]>([])

        struct Injected: Error {}

        init(length: Int, plan: ReadAheadPlan, failAt: UInt64? = nil) {
            var random = SplitMix64(seed: UInt64(length))
            bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            self.plan = plan
            self.failAt = failAt
        }

        var length: UInt64 { UInt64(bytes.count) }
        var readAheadPlan: ReadAheadPlan? { plan }
        var reads: [(offset: UInt64, count: Int)] { log.withLock { $0 } }

        func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer, section: CheckpointSection) throws {
            log.withLock { $0.append((offset, buffer.count)) }
            if let failAt, failAt >= offset && failAt < offset + UInt64(buffer.count) {
                throw Injected()
            }
            XCTAssertLessThanOrEqual(offset + UInt64(buffer.count), length)
            bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + Int(offset), byteCount: buffer.count) }
        }
    }

    func testSequentialReadsWithSkipsSeeEveryByte() throws {
        let input = MemoryInput(length: 1 << 20, plan: ReadAheadPlan(blockSize: 16 << 10, blocksInFlight: 3, end: (1 << 20) - 5000))
        let reader = SequentialReader(.random(input), bufferSize: 4096, readAhead: true)
        var random = SplitMix64(seed: 7)
        while reader.offset < input.length {
            let left = Int(input.length - reader.offset)
            let n = min(left, Int(random.next() % 40000) + 1)
            if random.next() % 4 == 0 {
                // A skip, sometimes far past the window.
                try reader.skip(UInt64(random.next() % 5 == 0 ? min(left, 200_000) : n), section: .file)
                continue
            }
            let at = reader.offset
            let got = try reader.read(n, section: .file)
            XCTAssertEqual(got, Array(input.bytes[Int(at)..<Int(at) + n]), "at \(at)")
        }
        // Blocks before the end of the plan, direct reads after it.
        for read in input.reads where read.offset < input.plan.end {
            XCTAssertLessThanOrEqual(read.count, input.plan.blockSize)
        }
    }

    func testAFailedBlockFailsTheRead() throws {
        let input = MemoryInput(
            length: 256 << 10, plan: ReadAheadPlan(blockSize: 16 << 10, blocksInFlight: 4, end: 256 << 10), failAt: 100_000)
        let reader = SequentialReader(.random(input), bufferSize: 4096, readAhead: true)
        XCTAssertEqual(try reader.read(50_000, section: .file), Array(input.bytes[..<50_000]))
        XCTAssertThrowsError(try reader.read(100_000, section: .file)) { error in
            XCTAssertTrue(error is MemoryInput.Injected, "\(error)")
        }
    }

    func testAnnouncedOffsetsAreFetchedAhead() throws {
        let input = MemoryInput(length: 1 << 20, plan: ReadAheadPlan(blockSize: 16 << 10, blocksInFlight: 2, end: 1 << 20))
        let reader = SequentialReader(.random(input), bufferSize: 1024)
        let offsets: [UInt64] = (0..<40).map { UInt64($0) * 20_000 + 3000 }
        _ = try reader.read(100, section: .file)
        reader.willRead(at: offsets)
        for offset in offsets {
            try reader.skip(offset - reader.offset, section: .file)
            let got = try reader.read(50, section: .file)
            XCTAssertEqual(got, Array(input.bytes[Int(offset)..<Int(offset) + 50]))
        }
        // The first read, then one read per announced offset, a buffer each.
        let reads = input.reads
        XCTAssertEqual(reads.count, 1 + offsets.count, "\(reads)")
        XCTAssertEqual(Set(reads.dropFirst().map(\.offset)), Set(offsets))
        XCTAssertTrue(reads.dropFirst().allSatisfy { $0.count == 1024 })
    }
}
