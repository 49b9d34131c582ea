import Foundation
import XCTest

/// Progress is drawn on a terminal, and only there.
final class ProgressTests: XCTestCase {
    func testProgressOnlyOnATerminal() throws {
        try requirePython()
        let dir = try Scratch()
        try SparseImage.reference().write(to: dir.path("src.img"))
        let erase = "\r\u{1B}[K"
        for (args, label) in [
            (["save", "src.img", "ck.pgsnap", "--frame-size", "64KiB"], "saving"),
            (["verify", "ck.pgsnap"], "verifying"),
            (["restore", "ck.pgsnap", "out.img"], "restoring"),
        ] {
            let (status, output) = try PGSnap.runInTerminal(args, in: dir.url)
            XCTAssertEqual(status, 0, output)
            XCTAssertTrue(output.contains(erase + label + " "), "\(args): no progress in \(output.debugDescription)")
            XCTAssertTrue(output.contains("100%"), "\(args): \(output.debugDescription)")
            // The progress line ends before anything else is printed.
            let last = try XCTUnwrap(output.range(of: erase, options: .backwards))
            XCTAssertTrue(output[last.upperBound...].contains("\n"), output.debugDescription)

            // Not a terminal: no progress; --quiet on a terminal: none either.
            let plain = try PGSnap.run(args, in: dir.url)
            XCTAssertEqual(plain.status, 0, plain.stderr)
            XCTAssertFalse(plain.stderr.contains("\r") || plain.stderr.contains("\u{1B}"), plain.stderr.debugDescription)
            let (_, quiet) = try PGSnap.runInTerminal(args + ["--quiet"], in: dir.url)
            XCTAssertFalse(quiet.contains(erase), "\(args) --quiet: \(quiet.debugDescription)")
        }
    }
}
