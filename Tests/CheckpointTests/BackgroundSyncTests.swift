import XCTest
@testable import Checkpoint
@testable import PGAlloc
import SystemPackage
import TestSupport
import Workloads

/// The thread that syncs a checkpoint file while it is written
/// (`BackgroundSync`), and the save path that uses it. Run under
/// ThreadSanitizer by `make tsan`.
final class BackgroundSyncTests: XCTestCase {
    /// A writer that asks for syncs after every write, and finishes at a
    /// random moment, with or without a sync under way: the file holds
    /// everything written, and no sync fails.
    func testRequestsWhileWritingThenFinishAtRandomMoments() throws {
        let seed = testSeed(0xB5_5EC0, "background sync")
        var rng = SplitMix64(seed: seed)
        let scratch = try ScratchDirectory(for: self)
        let chunk = [UInt8](repeating: 0x5A, count: 64 << 10)
        for round in 0..<40 {
            let file = try OwnedFileDescriptor.open(scratch.path("f\(round)"), flags: O_RDWR | O_CREAT | O_TRUNC, mode: 0o600)
            let sync = try BackgroundSync(descriptor: file.descriptor, name: "f\(round)")
            let writes = Int(rng.next() % 64)
            for _ in 0..<writes {
                try chunk.withUnsafeBytes { try file.descriptor.writeAll($0, call: "write") }
                sync.request()
                if rng.next() % 4 == 0 {
                    sched_yield()
                }
            }
            XCTAssertNoThrow(try sync.finish(), "seed \(seed), round \(round)")
            // A second finish is allowed and does nothing.
            XCTAssertNoThrow(try sync.finish())
            XCTAssertEqual(try file.descriptor.status(call: "fstat").st_size, writes * chunk.count, "seed \(seed), round \(round)")
        }
    }

    /// A sync that fails (fdatasync of a pipe: EINVAL) is reported by
    /// `finish()`, naming the call.
    func testAFailedSyncIsReportedByFinish() throws {
        var ends: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&ends), 0)
        defer {
            close(ends[0])
            close(ends[1])
        }
        let sync = try BackgroundSync(descriptor: FileDescriptor(rawValue: ends[1]), name: "a pipe")
        sync.request()
        sync.waitUntilIdle()
        XCTAssertThrowsError(try sync.finish()) { error in
            XCTAssertTrue("\(error)".contains("fdatasync a pipe"), "\(error)")
        }
    }

    /// Saves larger than the sync step: the checkpoint is whole and
    /// restores to the same memory, whatever the number of syncs.
    func testSaveAcrossSeveralSyncStepsRoundTrips() throws {
        let scratch = try ScratchDirectory(for: self)
        let source = try MemoryFile()
        let length = 2 * DescriptorSink.syncStep + 7 * 4096
        let fr = try source.allocate(length, kind: .anonymous)
        // Incompressible, so that the checkpoint passes the step twice.
        var rng = SplitMix64(seed: 77)
        var bytes = [UInt8](repeating: 0, count: Int(length))
        bytes.withUnsafeMutableBytes { raw in
            for i in 0..<raw.count / 8 {
                raw.storeBytes(of: rng.next(), toByteOffset: i * 8, as: UInt64.self)
            }
        }
        try writeThroughMapping(source, at: fr.start, bytes)
        let path = scratch.path("big.ckpt")
        _ = try source.save(to: .path(path))
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64)
        XCTAssertGreaterThan(size, 2 * DescriptorSink.syncStep)
        let restored = try MemoryFile.restore(from: .path(path))
        XCTAssertTrue(try sameContents(source.fileDescriptor, restored.fileDescriptor, in: fr))
    }
}
