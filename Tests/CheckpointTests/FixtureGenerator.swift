import Foundation
import XCTest
@testable import Checkpoint
@testable import PGAlloc
import Workloads

/// The generator of fixtures/v1 and fixtures/v2 (see fixtures/README.md),
/// and the check that it is deterministic.
///
///     PGSNAP_REGENERATE_FIXTURES=1 swift test --filter FixtureGenerator
///
/// writes the fixtures that are missing and fails, without touching them,
/// if a committed one would come out differently. `=overwrite` rewrites
/// everything: only for fixtures not yet committed. Without the variable
/// the generator test is skipped and only the determinism tests run.
final class FixtureGeneratorTests: XCTestCase {
    static let variable = "PGSNAP_REGENERATE_FIXTURES"

    /// Every file of `set`'s directory its catalog makes, by path relative
    /// to that directory, with its bytes. The good fixtures an older
    /// writer made are not made again (the writer writes the newest
    /// version): only their crafted ones.
    static func generate(_ set: FixtureSet) throws -> [(String, [UInt8])] {
        var files: [(String, [UInt8])] = []
        for fixture in set.good where (set.writerMakesGood && !fixture.madeByOlderWriter) || !fixture.isWritten {
            let bytes = try fixture.make()
            files.append(("\(fixture.name).pgsnap", bytes))
            let directory = try makeTemporaryDirectory("fixture-gen")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let path = directory + "/checkpoint"
            try writeFile(path, bytes)
            let metadata = try CheckpointReader.readMetadata(from: .path(path), includeFrames: true)
            files.append(("\(fixture.name).metadata.json", Array(renderMetadata(metadata).utf8)))
            let expected = try expectedContents(fixture, metadata: metadata)
            files.append(("\(fixture.name).contents.json", Array(expected.rendered().utf8)))
            if let image = try fixture.makeImage() {
                files.append(("\(fixture.name).image", image))
            }
        }
        for broken in set.broken {
            files.append(("broken/\(broken.name).pgsnap", try broken.make()))
        }
        files.append(("broken/manifest.json", Array(brokenManifest(set).utf8)))
        return files
    }

    /// What the fixture must restore to, worked out from its source rather
    /// than from the reader: a MemoryFile's own state after the save (its
    /// known-committed pages are exactly the stored ones), the crafted
    /// frames' runs and data, a raw image's non-zero pages.
    static func expectedContents(_ fixture: GoodFixture, metadata: CheckpointMetadata) throws -> RestoredContents {
        switch fixture.source {
        case .memoryFile(let make, let options):
            let file = try make()
            defer { file.destroy() }
            let directory = try makeTemporaryDirectory("fixture-expect")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            _ = try file.save(to: .path(directory + "/c"), options: options)
            return try describeRestored(file, dataSize: file.totalSize)
        case .incremental(_, let make, let change, let options):
            let file = try make()
            defer { file.destroy() }
            let directory = try makeTemporaryDirectory("fixture-expect")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            _ = try file.save(to: .path(directory + "/p"), options: options)
            try change(file)
            _ = try file.save(to: .path(directory + "/c"), parent: .path(directory + "/p"), options: options)
            return try describeRestored(file, dataSize: file.totalSize)
        case .crafted(_, let crafted):
            let c = crafted()
            var runs: [FileRange] = []
            var sha = SHA256()
            var perKind = MemoryStats()
            var kinds = KindCursor(segments: c.segments)
            for f in c.frames {
                sha.update(f.data)
                for run in f.runs {
                    append(run, to: &runs)
                    kinds.account(run, into: &perKind)
                }
            }
            return RestoredContents(
                fileSize: c.fileSize, dataSize: c.fileSize, storedRuns: runs, sha256: sha.finish(), committedPerKind: perKind,
                usage: c.segments.filter { $0.refs > 0 },
                image: nil)
        case .rawImage(_, let kind, _):
            let image = try fixture.makeImage()!
            var runs: [FileRange] = []
            var sha = SHA256()
            var page = 0
            while page < image.count {
                var bytes = Array(image[page..<min(page + 4096, image.count)])
                bytes += [UInt8](repeating: 0, count: 4096 - bytes.count)
                if bytes.contains(where: { $0 != 0 }) {
                    append(FileRange(start: UInt64(page), end: UInt64(page + 4096)), to: &runs)
                    sha.update(bytes)
                }
                page += 4096
            }
            var perKind = MemoryStats()
            perKind[kind] = runs.reduce(0) { $0 + $1.length }
            // The segments are the image's data extents, as the save found
            // them: taken from the checkpoint's own table, which the image
            // test checks against the restored bytes.
            let usage = metadata.segments
            return RestoredContents(
                fileSize: metadata.header.fileSize, dataSize: UInt64(image.count), storedRuns: runs, sha256: sha.finish(),
                committedPerKind: perKind, usage: usage, image: fixture.imageName)
        }
    }

    static func brokenManifest(_ set: FixtureSet) -> String {
        func outcome(_ e: ExpectedFailure?) -> StableJSON { e.map(\.json) ?? .string("ok") }
        let entries: [StableJSON] = set.broken.map { b in
            .object([
                ("file", .string("\(b.name).pgsnap")),
                ("summary", .string(b.summary)),
                ("readMetadata", outcome(b.readMetadata)),
                ("verify", outcome(b.restore)),
                ("restore", outcome(b.restore)),
                ("restoreFromPipe", outcome(b.stream)),
            ])
        }
        return StableJSON.object([
            ("comment", .string("Each file of this directory and the error every reader must give: readMetadata, verify and restore (MemoryFile and RawImage) reading the file, and restore reading it from a pipe. \"ok\": the reader accepts the file (readMetadata skips payloads). Written by Tests/CheckpointTests/FixtureGenerator.swift from \(set.version == 1 ? "FixtureBrokenCatalog.swift" : "FixtureCatalogV2.swift"); see ../../README.md.")),
            ("fixtures", .array(entries)),
        ]).rendered()
    }

    func testRegenerateFixtures() throws {
        guard let mode = ProcessInfo.processInfo.environment[Self.variable] else {
            throw XCTSkip("set \(Self.variable)=1 to write missing fixtures")
        }
        let overwrite = mode == "overwrite"
        var written: [String] = []
        var differing: [String] = []
        for set in FixtureSet.all {
            try FileManager.default.createDirectory(atPath: set.brokenDirectory, withIntermediateDirectories: true)
            for (name, bytes) in try Self.generate(set) {
                let path = set.directory + "/" + name
                if let old = try? readFile(path) {
                    if old == bytes {
                        continue
                    }
                    // The manifest may change, to make an expectation more
                    // precise or to list a new case (fixtures/README.md).
                    if !overwrite && !name.hasSuffix("manifest.json") {
                        differing.append("v\(set.version)/\(name)")
                        continue
                    }
                }
                try writeFile(path, bytes)
                written.append("v\(set.version)/\(name)")
            }
        }
        print("fixture generator: wrote \(written.count) files: \(written.joined(separator: ", "))")
        XCTAssert(
            differing.isEmpty,
            "committed fixtures must never change, and these would: \(differing.joined(separator: ", ")). Add new fixtures under new names instead.")
    }

    /// The generator makes the same bytes twice over, and (informatively)
    /// the bytes committed.
    func testGeneratorIsDeterministic() throws {
        for set in FixtureSet.all {
            let first = try Self.generate(set)
            let second = try Self.generate(set)
            XCTAssertEqual(first.map(\.0), second.map(\.0))
            for ((name, a), (_, b)) in zip(first, second) {
                XCTAssert(a == b, "v\(set.version)/\(name): two generations differ")
            }
            var same = 0
            var differ: [String] = []
            for (name, bytes) in first {
                if let committed = try? readFile(set.directory + "/" + name) {
                    if committed == bytes { same += 1 } else { differ.append(name) }
                }
            }
            print("fixture generator: v\(set.version): \(same) of \(first.count) files identical to the committed ones; different here: \(differ.isEmpty ? "none" : differ.joined(separator: ", "))")
        }
    }

    /// Two MemoryFiles built the same way save to the same bytes, whatever
    /// the thread count. Saving one MemoryFile again gives the same bytes,
    /// unless the first save decommitted the committed pages it found all
    /// zero: since a frame is cut every `frameSize` bytes of known-committed
    /// pages (zero ones included), the next save packs the data pages into
    /// frames differently. From the second save on, the bytes stay the same.
    func testSaveIsDeterministic() throws {
        let directory = try makeTemporaryDirectory("fixture-determinism")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for (name, make) in [("mixed", FixtureCatalog.makeMixed), ("chunk-boundary", FixtureCatalog.makeChunkBoundary)] {
            var rounds: [[[UInt8]]] = [[], [], []]
            for threads in [1, 2, 4] {
                let file = try make()
                defer { file.destroy() }
                var options = fixtureSaveOptions(frameSize: 16 << 10)
                options.threads = threads
                options.decommitZeroPages = false
                let kept = directory + "/\(name)-\(threads)-kept"
                _ = try file.save(to: .path(kept), options: options)
                _ = try file.save(to: .path(kept + "-again"), options: options)
                XCTAssert(try readFile(kept) == readFile(kept + "-again"), "\(name): a save that keeps zero pages, saved again, differs")
                options.decommitZeroPages = true
                for round in 0..<3 {
                    let path = directory + "/\(name)-\(threads)-\(round)"
                    _ = try file.save(to: .path(path), options: options)
                    rounds[round].append(try readFile(path))
                }
            }
            for (round, outputs) in rounds.enumerated() {
                for (i, o) in outputs.enumerated() {
                    XCTAssert(o == outputs[0], "\(name): save \(round) of file \(i) differs from file 0's (\(o.count) vs \(outputs[0].count) bytes)")
                }
            }
            XCTAssert(rounds[2][0] == rounds[1][0], "\(name): third save differs from the second")
            let first = try metadata(rounds[0][0], directory + "/m0")
            let second = try metadata(rounds[1][0], directory + "/m1")
            XCTAssertEqual(first.segments, second.segments, "\(name): segments")
            XCTAssertEqual(first.totals.storedBytes, second.totals.storedBytes, "\(name): storedBytes")
            XCTAssertEqual(first.totals.storedPerKind, second.totals.storedPerKind, "\(name): storedPerKind")
            XCTAssertEqual(first.frames.flatMap(\.runs).reduce(into: []) { append($1, to: &$0) },
                           second.frames.flatMap(\.runs).reduce(into: []) { append($1, to: &$0) }, "\(name): stored runs")
            print("\(name): first save \(rounds[0][0].count) bytes in \(first.totals.frameCount) frames, second save \(rounds[1][0].count) bytes in \(second.totals.frameCount) frames (\(rounds[0][0] == rounds[1][0] ? "identical" : "different framing"))")
        }
    }

    private func metadata(_ bytes: [UInt8], _ path: String) throws -> CheckpointMetadata {
        try writeFile(path, bytes)
        return try CheckpointReader.readMetadata(from: .path(path), includeFrames: true)
    }

    /// The crafted base stays small enough for the exhaustive sweeps, with
    /// several frames.
    func testCraftedBaseShape() throws {
        let (bytes, layout) = try FixtureCatalog.base()
        print("crafted base: \(bytes.count) bytes, frames at \(layout.frameHeaders), index \(layout.index), trailer \(layout.trailer)")
        XCTAssertEqual(layout.frameHeaders.count, 3)
        XCTAssertLessThan(bytes.count, 8 << 10)
        _ = try FixtureCatalog.paddedFrame()
    }
}
