import Foundation
import XCTest
@testable import Checkpoint
@testable import PGAlloc

/// The broken fixtures of fixtures/vN/broken fail as manifest.json says,
/// through every reader, from a file and from a pipe; and no hostile
/// checkpoint makes a reader use unbounded memory or time.
final class HostileCheckpointTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = try makeTemporaryDirectory("hostile")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    struct ManifestEntry {
        var file: String
        var outcomes: [String: ExpectedFailure?]
    }

    static let readers = ["readMetadata", "verify", "restore", "restoreFromPipe"]

    func manifest(_ set: FixtureSet) throws -> [ManifestEntry] {
        let data = try Data(contentsOf: URL(fileURLWithPath: set.brokenDirectory + "/manifest.json"))
        let root = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let fixtures = try XCTUnwrap(root["fixtures"] as? [[String: Any]])
        return try fixtures.map { f in
            var outcomes: [String: ExpectedFailure?] = [:]
            for reader in Self.readers {
                let value = try XCTUnwrap(f[reader], "\(f["file"] ?? "?"): no \(reader) outcome")
                if let s = value as? String {
                    XCTAssertEqual(s, "ok")
                    outcomes[reader] = .some(nil)
                } else {
                    let o = try XCTUnwrap(value as? [String: String])
                    outcomes[reader] = ExpectedFailure(try XCTUnwrap(o["reason"]), try XCTUnwrap(o["section"]), o["field"])
                }
            }
            return ManifestEntry(file: try XCTUnwrap(f["file"] as? String), outcomes: outcomes)
        }
    }

    /// What `body` gives: nil if it succeeds, its CheckpointError, or a
    /// failure for any other error.
    func outcome(_ what: String, _ body: () throws -> Void) -> ExpectedFailure? {
        do {
            try body()
            return nil
        } catch let e as CheckpointError {
            XCTAssertFalse(e.description.isEmpty)
            return ExpectedFailure(e)
        } catch {
            return ExpectedFailure("other error: \(error)", "-")
        }
    }

    func check(_ got: ExpectedFailure?, _ expected: ExpectedFailure?, _ context: String, seconds: Double) {
        XCTAssertEqual(
            got, expected,
            "\(context): expected \(expected.map(\.description) ?? "success"), got \(got.map(\.description) ?? "success")")
        XCTAssertLessThan(seconds, 5, "\(context) took \(seconds) s")
    }

    func testManifestCoversEveryBrokenFixture() throws {
        for set in FixtureSet.all {
            let listed = Set(try manifest(set).map(\.file))
            let present = Set(try FileManager.default.contentsOfDirectory(atPath: set.brokenDirectory).filter { $0.hasSuffix(".pgsnap") })
            XCTAssertEqual(listed, present, "manifest.json and the files of \(set.brokenDirectory) differ")
            XCTAssertEqual(
                String(decoding: try readFile(set.brokenDirectory + "/manifest.json"), as: UTF8.self),
                FixtureGeneratorTests.brokenManifest(set), "v\(set.version) manifest.json and its catalog disagree")
        }
    }

    func testBrokenFixturesFailAsTheManifestSays() throws {
        var checked = 0
        for set in FixtureSet.all {
        for entry in try manifest(set) {
            let path = set.brokenDirectory + "/" + entry.file
            let bytes = try readFile(path)
            func timed(_ body: () -> ExpectedFailure?) -> (ExpectedFailure?, Double) {
                let start = DispatchTime.now()
                let r = body()
                return (r, Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9)
            }
            var (got, t) = timed { outcome("readMetadata") { _ = try CheckpointReader.readMetadata(from: .path(path), includeFrames: true) } }
            check(got, entry.outcomes["readMetadata"]!, "\(entry.file): readMetadata", seconds: t)
            (got, t) = timed { outcome("verify") { _ = try CheckpointReader.verify(.path(path), options: RestoreOptions(threads: 2)) } }
            check(got, entry.outcomes["verify"]!, "\(entry.file): verify", seconds: t)
            (got, t) = timed {
                outcome("restore") {
                    var options = RestoreOptions()
                    options.threads = 2
                    try MemoryFile.restore(from: .path(path), options: options).destroy()
                }
            }
            check(got, entry.outcomes["restore"]!, "\(entry.file): MemoryFile.restore", seconds: t)
            let image = directory + "/image"
            (got, t) = timed { outcome("restore") { _ = try RawImage.restore(from: .path(path), toImage: image) } }
            check(got, entry.outcomes["restore"]!, "\(entry.file): RawImage.restore", seconds: t)
            XCTAssertFalse(FileManager.default.fileExists(atPath: image), "\(entry.file): a failed RawImage.restore left an image")
            (got, t) = timed {
                outcome("restoreFromPipe") {
                    try withPipe(feeding: bytes) { fd in try MemoryFile.restore(from: .descriptor(fd)) }.destroy()
                }
            }
            check(got, entry.outcomes["restoreFromPipe"]!, "\(entry.file): restore from a pipe", seconds: t)
            (got, t) = timed {
                outcome("restoreFromPipe") {
                    _ = try withPipe(feeding: bytes) { fd in try CheckpointReader.verify(.descriptor(fd), options: RestoreOptions(threads: 2)) }
                }
            }
            check(got, entry.outcomes["restoreFromPipe"]!, "\(entry.file): verify from a pipe", seconds: t)
            checked += 1
        }
        }
        print("hostile: \(checked) broken fixtures checked through 7 readers each")
    }

    // MARK: - Bounded memory and time

    /// Peak resident memory since the last reset, in bytes.
    static func peakRSS() -> UInt64 {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kib = line.split(separator: " ").compactMap { UInt64($0) }.first ?? 0
            return kib * 1024
        }
        return 0
    }

    static func currentRSS() -> UInt64 {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return (line.split(separator: " ").compactMap { UInt64($0) }.first ?? 0) * 1024
        }
        return 0
    }

    /// Resets the peak to the current resident size (Linux 4.0+:
    /// `echo 5 > /proc/self/clear_refs`).
    static func resetPeakRSS() -> Bool {
        let fd = open("/proc/self/clear_refs", O_WRONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return write(fd, "5", 1) == 1
    }

    /// Restores `path` (2 threads) and returns how much the peak resident
    /// size grew and how long it took. With `userfaultfd` off the restore
    /// writes with pwrite, and the pages it writes, which are the new
    /// file's and not the reader's, stay out of this process's RSS (pages
    /// written with UFFDIO_COPY are mapped here, and count).
    func measureRestore(
        _ path: String, memoryLimit: UInt64 = RestoreOptions.defaultMemoryLimit, userfaultfd: Bool = true
    ) throws -> (growth: UInt64, seconds: Double, result: ExpectedFailure?) {
        guard Self.resetPeakRSS() else { throw XCTSkip("cannot reset the peak RSS here (/proc/self/clear_refs)") }
        let before = Self.currentRSS()
        let start = DispatchTime.now()
        let result = outcome("restore") {
            var options = RestoreOptions()
            options.threads = 2
            options.memoryLimit = memoryLimit
            options.writeWithUserfaultfd = userfaultfd
            try MemoryFile.restore(from: .path(path), options: options).destroy()
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        let peak = Self.peakRSS()
        return (peak > before ? peak - before : 0, seconds, result)
    }

    /// The memory the format lets a reader use for one checkpoint of
    /// `fileLength` bytes, with `threads` workers: every worker has a
    /// frameLimit-byte decompression buffer, which a tiny payload can fill
    /// (zstd's ratio is unbounded); every frame in flight (threads + 2)
    /// holds its payload, at most ZSTD_compressBound(frameLimit) bytes and
    /// never more than the file holds. Add a 1 MiB read buffer, the zstd
    /// contexts and the segment table (in proportion to the file): the
    /// slack covers them, the allocator and the measuring.
    static func memoryBound(frameLimit: UInt32, fileLength: UInt64, threads: Int) -> UInt64 {
        let payloads = UInt64(threads + 2) * min(CheckpointFormat.maxCompressedLength(frameLimit: frameLimit), fileLength)
        let buffers = UInt64(threads) * UInt64(frameLimit)
        let slack: UInt64 = 24 << 20
        return payloads + buffers + 4 * fileLength + slack
    }

    /// Every broken fixture restores (fails) in bounded memory and time:
    /// the peak resident size grows by less than `memoryBound` for its
    /// frameLimit and length (152 MiB for the 64 MiB frames of
    /// bomb-after-rle-frames, which measures 128 MiB: two full buffers),
    /// and less than 24 MiB for those whose frameLimit is 16 KiB; each
    /// takes under 5 s in a debug build (measured: under 0.01 s, 0.5 s for
    /// bomb-after-rle-frames, which decompresses and writes 448 MiB).
    func testRestoreOfBrokenFilesIsBounded() throws {
        var rows: [String] = []
        var worst: (String, UInt64) = ("", 0)
        for set in FixtureSet.all {
        for file in try FileManager.default.contentsOfDirectory(atPath: set.brokenDirectory).sorted() where file.hasSuffix(".pgsnap") {
            let path = set.brokenDirectory + "/" + file
            // The bound is the reader's own memory (buffers, tables): the
            // pages a broken checkpoint gets written before it fails are
            // the new file's, and kept out of the measure.
            let (growth, seconds, result) = try measureRestore(path, userfaultfd: false)
            XCTAssertNotNil(result, "\(file) restored")
            let frameLimit = (try? readFile(path)).flatMap { b in b.count >= 28 ? u32(b, at: 24) : nil } ?? 0
            let fileLength = UInt64((try? readFile(path).count) ?? 0)
            let bound = frameLimit <= (16 << 10) ? UInt64(24 << 20)
                : Self.memoryBound(frameLimit: min(frameLimit, CheckpointFormat.maxFrameLimit), fileLength: fileLength, threads: 2)
            XCTAssertLessThan(growth, bound, "\(file): peak RSS grew by \(growth >> 20) MiB (bound \(bound >> 20) MiB)")
            XCTAssertLessThan(seconds, 5, "\(file): restore took \(seconds) s")
            if growth > worst.1 { worst = (file, growth) }
            rows.append("v\(set.version)/\(file): +\(growth >> 10) KiB peak RSS, \(String(format: "%.3f", seconds)) s")
        }
        }
        print("hostile memory/time:\n  " + rows.joined(separator: "\n  "))
        print("hostile memory/time: worst \(worst.0) +\(worst.1 >> 20) MiB")
    }

    /// Checkpoints that claim the largest sizes the format allows while
    /// holding almost nothing, valid or not: they are rejected (or, valid,
    /// restored when the memory limit allows it) without allocating what
    /// they claim.
    func testHugeClaimsCostNothing() throws {
        var unlimited = RestoreOptions()
        unlimited.memoryLimit = CheckpointFormat.maxFileSize
        let maxFile = CheckpointFormat.maxFileSize
        var cases: [(String, [UInt8], Bool)] = []

        // Valid: an 8 EiB file, all allocated, one page stored at its end.
        var huge = CraftedCheckpoint()
        huge.fileSize = maxFile
        huge.frameLimit = 64 << 20
        huge.segments = [SegmentRecord(range: FileRange(start: 0, end: maxFile), refs: 1, kind: .anonymous)]
        huge.frames = [CraftedFrame(runs: [FileRange(start: maxFile - 4096, end: maxFile)], seed: 5)]
        cases.append(("8 EiB file, one page stored", try huge.bytes, true))

        // The largest segment count, with a file that holds five.
        var segments = FixtureCatalog.craftedBase()
        segments.fileSize = maxFile
        segments.segmentCount = maxFile / 4096
        cases.append(("2^51 segments claimed", try segments.bytes, false))

        // A 64 MiB frame whose payload claims the largest compressed length.
        var payload = FixtureCatalog.craftedBase()
        payload.frameLimit = 64 << 20
        let maxCompressed = UInt32(CheckpointFormat.maxCompressedLength(frameLimit: 64 << 20))
        payload.frames[0].headerPatch = { putU32(&$0, at: 28, maxCompressed) }
        cases.append(("a 64 MiB compressed length claimed", try payload.bytes, false))

        // Many frames claimed by index and trailer alike.
        var frames = FixtureCatalog.craftedBase()
        frames.totalsPatch = { $0.frameCount = 1 << 40 }
        cases.append(("2^40 frames claimed", try frames.bytes, false))

        for (name, bytes, valid) in cases {
            let path = directory + "/claims"
            try writeFile(path, bytes)
            let (growth, seconds, result) = try measureRestore(path, memoryLimit: unlimited.memoryLimit)
            if valid {
                XCTAssertNil(result, "\(name): \(result.map(\.description) ?? "")")
            } else {
                XCTAssertNotNil(result, "\(name) restored")
            }
            XCTAssertLessThan(growth, 24 << 20, "\(name): peak RSS grew by \(growth >> 20) MiB")
            XCTAssertLessThan(seconds, 5, "\(name): took \(seconds) s")
            print("hostile claims: \(name): \(result.map(\.description) ?? "restored"), +\(growth >> 10) KiB peak RSS, \(String(format: "%.3f", seconds)) s")
            // From a pipe: the stream reader cannot look at the end first.
            let streamed = outcome("restoreFromPipe") {
                try withPipe(feeding: bytes) { fd in try MemoryFile.restore(from: .descriptor(fd), options: unlimited) }.destroy()
            }
            XCTAssertEqual(streamed == nil, valid, "\(name) from a pipe: \(streamed.map(\.description) ?? "restored")")
        }
    }

    /// A checkpoint asking for a memory file beyond the restore limit is
    /// refused before any memory is created, by restore and verify, from
    /// a file and from a pipe; a limit that covers it lets it through.
    func testMemoryLimitIsCheckedFirst() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var c = FixtureCatalog.craftedBase()
        c.fileSize = 4 << 30
        let bytes = try c.bytes
        let path = directory + "/big"
        try writeFile(path, bytes)
        var options = RestoreOptions()
        options.memoryLimit = 2 << 30
        let limit = ExpectedFailure("limitExceeded", "header")
        XCTAssertEqual(outcome("restore") { try MemoryFile.restore(from: .path(path), options: options).destroy() }, limit)
        XCTAssertEqual(outcome("verify") { _ = try CheckpointReader.verify(.path(path), options: options) }, limit)
        XCTAssertEqual(
            outcome("restoreFromPipe") { try withPipe(feeding: bytes) { fd in try MemoryFile.restore(from: .descriptor(fd), options: options) }.destroy() },
            limit)
        XCTAssertNil(outcome("readMetadata") { _ = try CheckpointReader.readMetadata(from: .path(path)) }, "inspect shows any checkpoint")
        options.memoryLimit = 4 << 30
        XCTAssertNil(outcome("restore") { try MemoryFile.restore(from: .path(path), options: options).destroy() })
        // The default is 1 TiB: the 8 EiB claim of the test above is refused.
        XCTAssertEqual(RestoreOptions().memoryLimit, 1 << 40)
    }
}
