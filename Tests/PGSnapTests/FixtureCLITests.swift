import Foundation
import XCTest

/// The committed fixtures (fixtures/v1 and fixtures/v2) through the command line: every good
/// checkpoint inspects to its committed `pgsnap inspect --json` and
/// verifies; every broken one is refused by `pgsnap verify` and
/// `pgsnap restore` with exit status 65 and one line on stderr naming it,
/// and leaves no output behind.
///
/// The expected inspect output sits next to each fixture as
/// `<name>.inspect.json`. A missing one is written when
/// PGSNAP_UPDATE_GOLDEN=1; an existing one is never rewritten by the test:
/// the JSON shape is part of pgsnap's interface (docs/CLI.md).
final class FixtureCLITests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures")
    /// Each version's directory, with the fewest good and broken
    /// checkpoints it must hold.
    static let versions: [(directory: URL, good: Int, broken: Int)] = [
        (root.appendingPathComponent("v1"), 9, 100),
        (root.appendingPathComponent("v2"), 5, 20),
    ]

    var scratch: URL!

    override func setUpWithError() throws {
        scratch = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("pgsnap-fixture-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    /// Every good fixture, as its directory and name.
    private func goodFixtures() throws -> [(URL, String)] {
        var out: [(URL, String)] = []
        for version in Self.versions {
            let names = try FileManager.default.contentsOfDirectory(atPath: version.directory.path)
                .filter { $0.hasSuffix(".pgsnap") }
                .map { String($0.dropLast(".pgsnap".count)) }
                .sorted()
            XCTAssertGreaterThanOrEqual(names.count, version.good, "\(version.directory.lastPathComponent) lost checkpoints")
            out += names.map { (version.directory, $0) }
        }
        return out
    }

    func testEveryFixtureInspectsToItsJSONAndVerifies() throws {
        let updating = ProcessInfo.processInfo.environment["PGSNAP_UPDATE_GOLDEN"] == "1"
        for (fixtures, name) in try goodFixtures() {
            // Run from the fixtures' directory with a relative name, so that
            // nothing in the output depends on where the repository is.
            let inspect = try PGSnap.run(["inspect", "--json", "--segments", "\(name).pgsnap"], in: fixtures)
            XCTAssertEqual(inspect.status, 0, "\(name): \(inspect.stderr)")
            let golden = fixtures.appendingPathComponent("\(name).inspect.json")
            if let expected = FileManager.default.contents(atPath: golden.path) {
                // A golden file is never rewritten, and later versions may
                // add fields (docs/CLI.md): every field it has must be in
                // the output, the same.
                let got = try XCTUnwrap(try JSONSerialization.jsonObject(with: inspect.stdout) as? [String: Any], "\(name)")
                let want = try XCTUnwrap(try JSONSerialization.jsonObject(with: expected) as? [String: Any], "\(name)")
                for (key, value) in want {
                    XCTAssertEqual(
                        got[key].map { NSDictionary(dictionary: ["v": $0]) }, NSDictionary(dictionary: ["v": value]),
                        "\(name): inspect --json's \(key) differs from \(golden.lastPathComponent)")
                }
            } else if updating {
                try inspect.stdout.write(to: golden)
            } else {
                XCTFail("\(name): \(golden.lastPathComponent) is missing (PGSNAP_UPDATE_GOLDEN=1 writes it)")
            }
            let verify = try PGSnap.run(["verify", "\(name).pgsnap"], in: fixtures)
            XCTAssertEqual(verify.status, 0, "\(name): \(verify.stderr)")
        }
    }

    func testRawFixturesRestoreToTheirImages() throws {
        var restored = 0
        for (fixtures, name) in try goodFixtures() {
            let image = fixtures.appendingPathComponent("\(name).image")
            guard let expected = FileManager.default.contents(atPath: image.path) else { continue }
            let out = scratch.appendingPathComponent("\(name).restored")
            let r = try PGSnap.run(["restore", "--quiet", fixtures.appendingPathComponent("\(name).pgsnap").path, out.path], in: scratch)
            XCTAssertEqual(r.status, 0, "\(name): \(r.stderr)")
            XCTAssertEqual(try Data(contentsOf: out), expected, "\(name): restored image differs")
            restored += 1
        }
        XCTAssertGreaterThan(restored, 0, "no fixture has a raw image to compare with")
    }

    func testEveryBrokenFixtureIsRefusedByVerifyAndRestore() throws {
        for version in Self.versions {
        let broken = version.directory.appendingPathComponent("broken")
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: broken.appendingPathComponent("manifest.json"))) as? [String: Any]
        let entries = try XCTUnwrap(manifest?["fixtures"] as? [[String: Any]])
        XCTAssertGreaterThanOrEqual(entries.count, version.broken)
        for entry in entries {
            let file = try XCTUnwrap(entry["file"] as? String)
            let path = broken.appendingPathComponent(file).path
            // The manifest names the error each reader must give; through
            // the command line, every one of them is a bad checkpoint.
            XCTAssertNotNil(entry["verify"] as? [String: Any], "\(file): the manifest expects verify to accept it")
            let verify = try PGSnap.run(["verify", path], in: scratch)
            assertFailure(verify, status: 65, mentioning: file, "verify \(file)")

            let out = scratch.appendingPathComponent("out.img")
            let restore = try PGSnap.run(["restore", "--quiet", path, out.path], in: scratch)
            assertFailure(restore, status: 65, mentioning: file, "restore \(file)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "restore \(file) left an image")
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch.path).filter { !$0.hasPrefix(".std") }, [], "restore \(file) left files")
        }
        }
    }
}
