import Foundation
import XCTest

/// `pgsnap demo` at a small size: it runs the whole workload and reports
/// no difference.
final class DemoTests: XCTestCase {
    func testSmallDemo() throws {
        let dir = try Scratch()
        let work = dir.path("demo")
        let r = try PGSnap.run(["demo", "--allocated", "256MiB", "--touched", "64MiB", "--directory", work], in: dir.url)
        XCTAssertEqual(r.status, 0, "stdout: \(r.stdoutText)\nstderr: \(r.stderr)")
        let out = r.stdoutText
        for expected in [
            "bytes written (touched)     64 MiB (67108864 bytes)", "checkpoint bytes", "ratio", "save", "restore",
            "committed before (source)   64 MiB", "committed after (restored)", "verify                      OK: ",
            "pages that differ           0\n", "accounting of the restored file", "anonymous",
            "identical bytes             yes\n",
        ] {
            XCTAssertTrue(out.contains(expected), "no '\(expected)' in:\n\(out)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: work), "the demo left its directory")
    }
}
