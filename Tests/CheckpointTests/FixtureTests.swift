import Foundation
import XCTest
@testable import Checkpoint
@testable import PGAlloc

/// Every committed fixture of fixtures/v1 and fixtures/v2 reads as its
/// golden files say:
/// metadata (readMetadata and verify), contents after MemoryFile.restore
/// from the file and from a pipe, and for raw images the image RawImage
/// restores. Later versions of the reader must keep passing these.
final class FixtureTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = try makeTemporaryDirectory("fixtures")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The fixtures found in `set`'s directory: every `.pgsnap` there, so
    /// that a fixture added without a catalog entry is still tested; as
    /// paths without the `.pgsnap`, named `vN/name` in messages.
    func committedFixtures() throws -> [(name: String, base: String)] {
        var out: [(String, String)] = []
        for set in FixtureSet.all {
            let names = try FileManager.default.contentsOfDirectory(atPath: set.directory)
                .filter { $0.hasSuffix(".pgsnap") }
                .map { String($0.dropLast(".pgsnap".count)) }
                .sorted()
            XCTAssertFalse(names.isEmpty, "no fixture in \(set.directory)")
            out += names.map { ("v\(set.version)/\($0)", set.directory + "/" + $0) }
        }
        return out
    }

    func golden(_ base: String, _ suffix: String) throws -> String {
        String(decoding: try readFile("\(base).\(suffix)"), as: UTF8.self)
    }

    func testCatalogFixturesAreCommitted() throws {
        let committed = Set(try committedFixtures().map(\.name))
        for set in FixtureSet.all {
            for fixture in set.good {
                XCTAssert(committed.contains("v\(set.version)/\(fixture.name)"), "\(fixture.name) is in the catalog but not in \(set.directory): run the generator")
            }
        }
    }

    func testMetadataMatchesGolden() throws {
        for (name, base) in try committedFixtures() {
            let path = "\(base).pgsnap"
            let expected = try golden(base, "metadata.json")
            let read = renderMetadata(try CheckpointReader.readMetadata(from: .path(path), includeFrames: true))
            XCTAssertEqual(read, expected, "\(name): readMetadata differs from \(name).metadata.json")
            for threads in [1, 3] {
                let verified = renderMetadata(try CheckpointReader.verify(.path(path), options: RestoreOptions(threads: threads), includeFrames: true))
                XCTAssertEqual(verified, expected, "\(name): verify (\(threads) threads) differs from \(name).metadata.json")
            }
            let fd = open(path, O_RDONLY)
            defer { close(fd) }
            let fromDescriptor = renderMetadata(try CheckpointReader.readMetadata(from: .descriptor(fd), includeFrames: true))
            XCTAssertEqual(fromDescriptor, expected, "\(name): readMetadata(descriptor:) differs")
        }
    }

    func testRestoreMatchesGolden() throws {
        for (name, base) in try committedFixtures() {
            let start = DispatchTime.now()
            let path = "\(base).pgsnap"
            let expected = try golden(base, "contents.json")
            let image = expected.contains("\"image\"") ? "\(base.split(separator: "/").last!).image" : nil
            let dataSize = try CheckpointReader.readMetadata(from: .path(path)).header.dataSize
            for threads in [1, 2] {
                var options = RestoreOptions()
                options.threads = threads
                let file = try MemoryFile.restore(from: .path(path), options: options)
                defer { file.destroy() }
                let got = try describeRestored(file, dataSize: dataSize, image: image).rendered()
                XCTAssertEqual(got, expected, "\(name): restore (\(threads) threads) differs from \(name).contents.json")
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
            print("fixture \(name): restored twice and checked in \(String(format: "%.2f", seconds)) s")
        }
    }

    func testRestoreFromPipeMatchesGolden() throws {
        for (name, base) in try committedFixtures() {
            let path = "\(base).pgsnap"
            let expected = try golden(base, "contents.json")
            let image = expected.contains("\"image\"") ? "\(base.split(separator: "/").last!).image" : nil
            let dataSize = try CheckpointReader.readMetadata(from: .path(path)).header.dataSize
            // A chain's parents are found in the fixtures' directory.
            var options = RestoreOptions()
            options.parentSearchPaths = [(base as NSString).deletingLastPathComponent]
            let file = try withPipe(feeding: try readFile(path)) { fd in
                try MemoryFile.restore(from: .descriptor(fd), options: options)
            }
            defer { file.destroy() }
            let got = try describeRestored(file, dataSize: dataSize, image: image).rendered()
            XCTAssertEqual(got, expected, "\(name): restore from a pipe differs from \(name).contents.json")
        }
    }

    /// Raw-image fixtures restore, with RawImage.restore, to exactly the
    /// committed image: its length (not a multiple of 4096) and bytes.
    func testRawImagesRestoreToGoldenImage() throws {
        var tested = 0
        for (name, base) in try committedFixtures() {
            let imagePath = "\(base).image"
            guard let expected = try? readFile(imagePath) else { continue }
            let path = "\(base).pgsnap"
            let out = directory + "/image"
            let metadata = try RawImage.restore(from: .path(path), toImage: out)
            XCTAssertEqual(metadata.header.dataSize, UInt64(expected.count), "\(name): dataSize")
            XCTAssert(try readFile(out) == expected, "\(name): restored image differs from \(name).image")
            // From a pipe too.
            let streamed = directory + "/streamed"
            _ = try withPipe(feeding: try readFile(path)) { fd in
                try RawImage.restore(from: .descriptor(fd), toImage: streamed)
            }
            XCTAssert(try readFile(streamed) == expected, "\(name): image restored from a pipe differs")
            // Only the stored pages hold data: the rest are holes.
            let fd = open(out, O_RDONLY)
            defer { close(fd) }
            let read = try CheckpointReader.readMetadata(from: .path(path))
            let stored = read.totals.storedBytes + read.referencedBytes
            let extents = try dataExtents(fd, in: FileRange(start: 0, end: UInt64(expected.count)))
            XCTAssertLessThanOrEqual(extents.reduce(0) { $0 + $1.length }, stored, "\(name): restored image has more data than stored or referenced")
            tested += 1
        }
        XCTAssertGreaterThan(tested, 0, "no raw-image fixture")
    }
}

/// Runs `body` with the read end of a pipe that a thread feeds `bytes`
/// into, then closes. The pipe is closed on return.
func withPipe<R>(feeding bytes: [UInt8], _ body: (Int32) throws -> R) throws -> R {
    var fds: [Int32] = [-1, -1]
    guard pipe(&fds) == 0 else { throw HostError.last("pipe") }
    let readEnd = fds[0]
    let writeEnd = fds[1]
    // A reader that stops early closes its end: the writer then gets
    // EPIPE rather than a signal.
    signal(SIGPIPE, SIG_IGN)
    let finished = DispatchSemaphore(value: 0)
    let thread = Thread {
        bytes.withUnsafeBytes { p in
            var done = 0
            while done < p.count {
                let n = write(writeEnd, p.baseAddress! + done, p.count - done)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                done += n
            }
        }
        close(writeEnd)
        finished.signal()
    }
    thread.start()
    defer {
        close(readEnd)
        finished.wait()
    }
    return try body(readEnd)
}
