import Foundation
import XCTest
@testable import Checkpoint
@testable import PGAlloc
import Workloads

/// A save to a path is atomic: killed at any point, or failing for lack of
/// space, it leaves the path as it was (absent, or the old checkpoint).
final class CrashSafetyTests: XCTestCase {
    static let childPathVariable = "PGSNAP_TEST_CHILD_SAVE_PATH"

    /// Fills a MemoryFile with `mebibytes` MiB of incompressible data.
    static func makeSource(mebibytes: Int, seed: UInt64) throws -> MemoryFile {
        let file = try MemoryFile()
        let fr = try file.allocate(UInt64(mebibytes) << 20, kind: .anonymous)
        var rng = SplitMix64(seed: seed)
        try file.forEachMappedSlice(fr) { slice in
            let words = slice.bindMemory(to: UInt64.self)
            for i in words.indices {
                words[i] = rng.next()
            }
        }
        try file.updateUsage()
        return file
    }

    /// Runs only as a child process of `testKilledSaveLeavesOldFileOrNothing`:
    /// saves to the path it is given.
    func testChildSave() throws {
        guard let path = ProcessInfo.processInfo.environment[Self.childPathVariable] else {
            throw XCTSkip("runs only as the child process of a crash-safety test")
        }
        let source = try Self.makeSource(mebibytes: 96, seed: 99)
        _ = try source.save(to: .path(path))
    }

    private func runChild(savingTo path: String, killAfter delay: Double?) throws -> Int32 {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        child.arguments = ["CheckpointTests.CrashSafetyTests/testChildSave"]
        var environment = ProcessInfo.processInfo.environment
        environment[Self.childPathVariable] = path
        child.environment = environment
        child.standardOutput = FileHandle.nullDevice
        child.standardError = FileHandle.nullDevice
        try child.run()
        if let delay {
            usleep(UInt32(delay * 1_000_000))
            kill(child.processIdentifier, SIGKILL)
        }
        child.waitUntilExit()
        return child.terminationStatus
    }

    func testKilledSaveLeavesOldFileOrNothing() throws {
        let directory = try makeTemporaryDirectory("crash")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/memory.ckpt"

        // How long a whole save takes in a child, to spread the kills over.
        let started = Date()
        XCTAssertEqual(try runChild(savingTo: path, killAfter: nil), 0)
        let duration = Date().timeIntervalSince(started)
        _ = try CheckpointReader.verify(.path(path))
        let complete = try Data(contentsOf: URL(fileURLWithPath: path))

        let old = try Self.makeSource(mebibytes: 1, seed: 5)
        let oldPath = directory + "/old.ckpt"
        _ = try old.save(to: .path(oldPath))
        let oldBytes = try Data(contentsOf: URL(fileURLWithPath: oldPath))
        try FileManager.default.removeItem(atPath: oldPath)

        var rng = SplitMix64(seed: testSeed(0xC4A5_0001, "kill times"))
        var outcomes: [String: Int] = [:]
        for trial in 0..<20 {
            let hadOld = trial % 2 == 0
            try? FileManager.default.removeItem(atPath: path)
            if hadOld {
                try oldBytes.write(to: URL(fileURLWithPath: path))
            }
            let delay = Double(rng.next() % 1000) / 1000 * duration
            _ = try runChild(savingTo: path, killAfter: delay)

            let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0 != "memory.ckpt" }
            XCTAssertEqual(leftovers, [], "trial \(trial) (kill after \(delay) s) left temporary files")
            if let now = FileManager.default.contents(atPath: path) {
                if now == complete {
                    outcomes["finished", default: 0] += 1
                } else {
                    XCTAssertTrue(hadOld, "trial \(trial) (kill after \(delay) s): a file appeared that is not the finished checkpoint")
                    XCTAssertEqual(now, oldBytes, "trial \(trial) (kill after \(delay) s): the old checkpoint changed")
                    outcomes["old kept", default: 0] += 1
                }
            } else {
                XCTAssertFalse(hadOld, "trial \(trial) (kill after \(delay) s): the old checkpoint vanished")
                outcomes["nothing", default: 0] += 1
            }
        }
        print("kill trials: \(outcomes)")
        XCTAssertGreaterThan(outcomes["old kept", default: 0] + outcomes["nothing", default: 0], 0, "no kill landed during a save")
    }

    func testSaveIntoAFullFileSystemFailsAndKeepsTheOldFile() throws {
        let directory = try makeTemporaryDirectory("full")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        guard mount("tmpfs", directory, "tmpfs", 0, "size=6m") == 0 else {
            throw XCTSkip("cannot mount a tmpfs here: \(HostError.last("mount"))")
        }
        defer { umount(directory) }
        let path = directory + "/memory.ckpt"
        let old = try Self.makeSource(mebibytes: 1, seed: 1)
        _ = try old.save(to: .path(path))
        let oldBytes = try Data(contentsOf: URL(fileURLWithPath: path))

        let big = try Self.makeSource(mebibytes: 16, seed: 2)
        XCTAssertThrowsError(try big.save(to: .path(path))) { error in
            guard let host = error as? HostError else {
                return XCTFail("expected a host error, got \(error)")
            }
            XCTAssertEqual(host.errno, ENOSPC, "\(host)")
            XCTAssertTrue(host.description.contains("No space left on device"), host.description)
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), oldBytes)
        _ = try CheckpointReader.verify(.path(path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), ["memory.ckpt"])
        // The space is free again: a small save still fits.
        _ = try old.save(to: .path(directory + "/again.ckpt"))
    }
}
