import Foundation
import XCTest

/// pgsnap's interface, compared byte for byte with the files in
/// Tests/PGSnapTests/Golden/: `--help` of every command, and the `--json`
/// (and text) output for a checkpoint made inside the test from a fixed
/// image with fixed options.
///
/// To regenerate the files after an intended change, run
///
///     PGSNAP_UPDATE_GOLDEN=1 swift test --filter PGSnapTests.GoldenTests
///
/// and review the diff. The checkpoint's compressed sizes come from
/// libzstd: a different libzstd may compress differently, and then the
/// checkpoint files need regenerating (the help files do not).
final class GoldenTests: XCTestCase {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")
    static let updating = ProcessInfo.processInfo.environment["PGSNAP_UPDATE_GOLDEN"] == "1"

    private func assertGolden(_ actual: String, _ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let url = GoldenTests.directory.appendingPathComponent(name)
        if GoldenTests.updating {
            try FileManager.default.createDirectory(at: GoldenTests.directory, withIntermediateDirectories: true)
            try Data(actual.utf8).write(to: url)
            return
        }
        guard let expected = try? String(contentsOf: url, encoding: .utf8) else {
            XCTFail("no golden file \(name): run with PGSNAP_UPDATE_GOLDEN=1", file: file, line: line)
            return
        }
        if actual != expected {
            let a = actual.split(separator: "\n", omittingEmptySubsequences: false)
            let e = expected.split(separator: "\n", omittingEmptySubsequences: false)
            let first = Array(zip(a, e)).firstIndex { $0 != $1 } ?? min(a.count, e.count)
            XCTFail(
                """
                \(name) differs from its golden file at line \(first + 1):
                  expected: \(first < e.count ? String(e[first]) : "<end>")
                  actual:   \(first < a.count ? String(a[first]) : "<end>")
                (PGSNAP_UPDATE_GOLDEN=1 regenerates it)
                """, file: file, line: line)
        }
    }

    func testHelp() throws {
        let dir = try Scratch()
        for command in ["", "save", "restore", "inspect", "verify", "serve-uffd", "keygen", "demo"] {
            let args = command.isEmpty ? ["--help"] : [command, "--help"]
            let r = try PGSnap.run(args, in: dir.url)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(r.stderr, "")
            try assertGolden(r.stdoutText, "help-\(command.isEmpty ? "pgsnap" : command).txt")
        }
    }

    func testCheckpointOutput() throws {
        let dir = try Scratch()
        try SparseImage.reference().write(to: dir.path("src.img"))
        let save = try PGSnap.run(
            ["save", "src.img", "ck.pgsnap", "--frame-size", "64KiB", "--level", "3", "--threads", "2", "--json", "--annotate", "vm=golden"],
            in: dir.url, environment: ["SOURCE_DATE_EPOCH": "1764514800"])
        XCTAssertEqual(save.status, 0, save.stderr)
        XCTAssertEqual(save.stderrLines.count, 1, "the summary stays on stderr: \(save.stderr)")
        try assertGolden(save.stdoutText, "save.json")

        let outputs: [([String], String)] = [
            (["inspect", "ck.pgsnap", "--json"], "inspect.json"),
            (["inspect", "ck.pgsnap", "--json", "--segments"], "inspect-segments.json"),
            (["inspect", "ck.pgsnap", "--segments"], "inspect-segments.txt"),
            (["verify", "ck.pgsnap", "--json"], "verify.json"),
            (["restore", "ck.pgsnap", "out.img", "--json"], "restore.json"),
        ]
        for (args, name) in outputs {
            let r = try PGSnap.run(args, in: dir.url)
            XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)")
            try assertGolden(r.stdoutText, name)
            if name.hasSuffix(".json") {
                XCTAssertNoThrow(try jsonObject(r.stdout), name)
            }
        }
    }
}
