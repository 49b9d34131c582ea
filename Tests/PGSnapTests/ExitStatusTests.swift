#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest

/// Every exit status of docs/CLI.md, and the one-line error on stderr.
final class ExitStatusTests: XCTestCase {
    private var dir: Scratch!

    override func setUpWithError() throws {
        dir = try Scratch(name)
        try SparseImage.reference().write(to: dir.path("src.img"))
        let save = try PGSnap.run(["save", "src.img", "ck.pgsnap", "--frame-size", "64KiB"], in: dir.url)
        XCTAssertEqual(save.status, 0, save.stderr)
    }

    override func tearDown() {
        dir = nil
    }

    private func run(_ arguments: [String], stdin: String? = nil) throws -> PGSnap.Result {
        try PGSnap.run(arguments, in: dir.url, stdin: stdin)
    }

    // MARK: 0

    func testSuccess() throws {
        for args in [["inspect", "ck.pgsnap"], ["verify", "ck.pgsnap"], ["restore", "ck.pgsnap", "out.img"], ["--help"], ["save", "--help"]] {
            let r = try run(args)
            XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)")
        }
        let verify = try run(["verify", "ck.pgsnap"])
        XCTAssertTrue(verify.stdoutText.hasPrefix("OK: "), verify.stdoutText)
        XCTAssertTrue(verify.stdoutText.hasSuffix(" bytes stored\n"), verify.stdoutText)
        XCTAssertEqual(try run(["verify", "ck.pgsnap", "--quiet"]).stdout.count, 0)
    }

    func testNegativeLevel() throws {
        // A negative level is a value, not an option, in either spelling.
        for args in [["--level", "-1"], ["--level=-1"]] {
            let r = try run(["save", "src.img", "neg.pgsnap"] + args)
            XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)")
            XCTAssertEqual(try run(["verify", "neg.pgsnap"]).status, 0, "\(args)")
        }
    }

    // MARK: 64

    func testUsageErrors() throws {
        let cases: [([String], String)] = [
            (["save", "--bogus", "src.img", "x"], "Unknown option '--bogus'"),
            (["frobnicate"], "frobnicate"),
            (["save", "src.img"], "<output>"),
            (["restore"], "<checkpoint>"),
            (["inspect"], "<checkpoint>"),
            (["save", "src.img", "x", "--kind", "heap"], "'heap' is not a memory kind"),
            (["save", "src.img", "x", "--frame-size", "lots"], "'lots' is not a size"),
            (["save", "src.img", "x", "--frame-size", "12X"], "unknown unit 'X'"),
            (["save", "src.img", "x", "--frame-size", "99999999999999999999"], "too large"),
            (["save", "src.img", "x", "--frame-size", "99999999999T"], "too large"),
            (["save", "src.img", "x", "--frame-size", "64MB"], "64MiB"),
            (["save", "src.img", "x", "--frame-size", "5000"], "multiple of 4KiB"),
            (["save", "src.img", "x", "--level", "1000"], "--level 1000"),
            (["save", "src.img", "x", "--threads", "0"], "--threads 0"),
            (["verify", "ck.pgsnap", "--threads", "2000"], "--threads 2000"),
            (["demo", "--allocated", "100MiB"], "--allocated 100MiB"),
            (["demo", "--touched", "3000"], "--touched 3000"),
            (["demo", "--allocated", "128MiB", "--touched", "4KiB"], "at least 4KiB per 64MiB"),
            (["restore", "ck.pgsnap", "out.img", "--exec", "--", "true"], "not both"),
            (["restore", "ck.pgsnap"], "give OUTPUT"),
            (["restore", "ck.pgsnap", "--exec"], "needs a command"),
            (["restore", "ck.pgsnap", "out.img", "--", "true"], "needs --exec"),
            (["restore", "ck.pgsnap", "--json", "--exec", "--", "true"], "--json"),
            (["restore", "ck.pgsnap", "-"], "OUTPUT must be a path"),
            (["save", "src.img", "-", "--json"], "--json"),
            (["save", "-", "x"], "stdin"),
            (["save", "src.img", "./src.img"], "OUTPUT is SOURCE"),
            (["restore", "ck.pgsnap", "ck.pgsnap"], "OUTPUT is CHECKPOINT"),
        ]
        let image = try contents(dir.path("src.img"))
        let checkpoint = try contents(dir.path("ck.pgsnap"))
        for (args, message) in cases {
            let r = try run(args)
            assertFailure(r, status: 64, mentioning: message, "\(args)")
            XCTAssertEqual(r.stdout.count, 0, "\(args)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("x")))
        XCTAssertEqual(try contents(dir.path("src.img")), image)
        XCTAssertEqual(try contents(dir.path("ck.pgsnap")), checkpoint)
    }

    /// A source that is not a regular file is a usage error too.
    func testSourceThatIsNotAFile() throws {
        assertFailure(try run(["save", "/dev/null", "x"]), status: 64, mentioning: "/dev/null")
    }

    /// `save IMG -` with stdout on a terminal is refused (through a pty).
    func testStdoutTerminalRefused() throws {
        try requirePython()
        let (status, text) = try PGSnap.runInTerminal(["save", "src.img", "-"], in: dir.url)
        XCTAssertEqual(status, 64, text)
        XCTAssertTrue(text.contains("stdout is a terminal"), text)
    }

    // MARK: 65

    private func corruptCopies() throws -> [(name: String, what: String)] {
        let good = try contents(dir.path("ck.pgsnap"))
        let inspect = try jsonObject(try run(["inspect", "ck.pgsnap", "--json"]).stdout)
        let frame = try XCTUnwrap((inspect["frames"] as? [[String: Int]])?.first)
        let payload = frame["offset"]! + frame["headerLength"]!

        var flipped = good
        flipped[payload + frame["compressedLength"]! / 2] ^= 0x40
        try Data(flipped).write(to: dir.url.appendingPathComponent("payload.pgsnap"))

        var header = good
        header[frame["offset"]! + 24] ^= 0x01
        try Data(header).write(to: dir.url.appendingPathComponent("framehead.pgsnap"))

        try Data(good.prefix(good.count / 2)).write(to: dir.url.appendingPathComponent("truncated.pgsnap"))
        try Data(good.prefix(good.count - 1)).write(to: dir.url.appendingPathComponent("short.pgsnap"))
        try Data(good + [0]).write(to: dir.url.appendingPathComponent("long.pgsnap"))
        try Data("not a checkpoint\n".utf8).write(to: dir.url.appendingPathComponent("text.pgsnap"))
        try Data().write(to: dir.url.appendingPathComponent("empty.pgsnap"))
        return [
            ("payload.pgsnap", "a flipped payload byte"), ("framehead.pgsnap", "a flipped frame header byte"),
            ("truncated.pgsnap", "half a checkpoint"), ("short.pgsnap", "one byte short"), ("long.pgsnap", "one byte more"),
            ("text.pgsnap", "a text file"), ("empty.pgsnap", "an empty file"),
        ]
    }

    /// A corrupt checkpoint: 65 and one line naming the file, from verify,
    /// restore (path and stdin) and inspect; a failed restore leaves an
    /// existing OUTPUT as it was.
    func testCorruptCheckpoints() throws {
        let old = Array("precious old contents\n".utf8)
        for (name, what) in try corruptCopies() {
            assertFailure(try run(["verify", name]), status: 65, mentioning: name, "verify \(what)")
            assertFailure(try run(["verify", "-"], stdin: dir.path(name)), status: 65, mentioning: "stdin", "verify - \(what)")

            try Data(old).write(to: dir.url.appendingPathComponent("out.img"))
            assertFailure(try run(["restore", name, "out.img"]), status: 65, mentioning: name, "restore \(what)")
            XCTAssertEqual(try contents(dir.path("out.img")), old, "restore \(what) changed OUTPUT")
            assertFailure(try run(["restore", "-", "out.img"], stdin: dir.path(name)), status: 65, mentioning: "stdin", "restore - \(what)")
            XCTAssertEqual(try contents(dir.path("out.img")), old, "restore - \(what) changed OUTPUT")
            let exec = try run(["restore", name, "--exec", "--", "true"])
            assertFailure(exec, status: 65, mentioning: name, "restore --exec \(what)")

            let inspect = try run(["inspect", name])
            if name == "payload.pgsnap" {
                // inspect reads no payload: only verify and restore check it.
                XCTAssertEqual(inspect.status, 0, inspect.stderr)
            } else {
                assertFailure(inspect, status: 65, mentioning: name, "inspect \(what)")
                XCTAssertEqual(inspect.stdout.count, 0)
            }
        }
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: dir.url.path).filter { $0.hasPrefix(".out.img") }, [],
            "a temporary file was left behind")
    }

    // MARK: 74

    func testIOErrors() throws {
        let cases: [([String], String)] = [
            (["save", "missing.img", "x.pgsnap"], "missing.img"),
            (["restore", "missing.pgsnap", "out.img"], "missing.pgsnap"),
            (["restore", "missing.pgsnap", "--exec", "--", "true"], "missing.pgsnap"),
            (["inspect", "missing.pgsnap"], "missing.pgsnap"),
            (["verify", "missing.pgsnap"], "missing.pgsnap"),
            (["save", "src.img", "no/such/dir/x.pgsnap"], "no/such/dir"),
            (["save", "src.img", "src.img/x.pgsnap"], "src.img"),
            (["restore", "ck.pgsnap", "no/such/dir/out.img"], "no/such/dir"),
        ]
        for (args, file) in cases {
            assertFailure(try run(args), status: 74, mentioning: file, "\(args)")
        }
        // A full disk, on stdout.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: PGSnap.binary)
        process.arguments = ["save", "src.img", "-"]
        process.currentDirectoryURL = dir.url
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: "/dev/full"))
        let err = Pipe()
        process.standardError = err
        try process.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 74, text)
        XCTAssertTrue(text.hasPrefix("pgsnap: save src.img to stdout: "), text)
        XCTAssertTrue(text.contains("No space left on device"), text)
    }

    // MARK: 126, 127

    func testExecFailures() throws {
        assertFailure(try run(["restore", "ck.pgsnap", "--exec", "--", "no-such-command-pgsnap"]), status: 127, mentioning: "no-such-command-pgsnap")
        assertFailure(try run(["restore", "ck.pgsnap", "--exec", "--", "./no-such-command"]), status: 127, mentioning: "./no-such-command")
        assertFailure(try run(["restore", "ck.pgsnap", "--exec", "--", "./src.img"]), status: 126, mentioning: "src.img")
    }
}
