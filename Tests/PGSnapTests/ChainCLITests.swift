#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Workloads
import XCTest

/// save --parent, --parent-dir, flatten, inspect and verify of chains, and
/// exit status 79.
final class ChainCLITests: XCTestCase {
    private var dir: Scratch!

    override func setUpWithError() throws {
        dir = try Scratch(name)
        try SparseImage.reference().write(to: dir.path("src.img"))
        XCTAssertEqual(try run(["save", "src.img", "base.pgsnap", "--frame-size", "64KiB"]).status, 0)
        // A page of new bytes, then a child.
        var rng = SplitMix64(seed: 8)
        let fd = open(dir.path("src.img"), O_WRONLY)
        let page = (0..<4096).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        XCTAssertEqual(page.withUnsafeBytes { pwrite(fd, $0.baseAddress, 4096, 8192) }, 4096)
        close(fd)
    }

    override func tearDown() {
        dir = nil
    }

    private func run(_ arguments: [String]) throws -> PGSnap.Result {
        try PGSnap.run(arguments, in: dir.url)
    }

    /// Fails unless the two files hold the same bytes; names the first page
    /// that differs.
    private func assertSameImage(_ a: String, _ b: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let x = try contents(dir.path(a))
        let y = try contents(dir.path(b))
        XCTAssertEqual(x.count, y.count, "\(a) and \(b) lengths", file: file, line: line)
        let page = stride(from: 0, to: min(x.count, y.count), by: 4096).first { x[$0..<min($0 + 4096, x.count)] != y[$0..<min($0 + 4096, y.count)] }
        XCTAssertNil(page, "\(a) and \(b) differ in the page at \(page ?? 0)", file: file, line: line)
    }

    private func json(_ r: PGSnap.Result) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: r.stdout) as? [String: Any], r.stderr)
    }

    func testChildRestoresVerifiesInspectsAndFlattens() throws {
        let save = try run(["save", "src.img", "child.pgsnap", "--parent", "base.pgsnap", "--json", "--quiet"])
        XCTAssertEqual(save.status, 0, save.stderr)
        let report = try json(save)
        XCTAssertEqual(report["storedBytes"] as? Int, 4096, "only the changed page")
        XCTAssertGreaterThan(report["referencedBytes"] as? Int ?? 0, 0)
        let parent = try XCTUnwrap(report["parent"] as? [String: Any])
        XCTAssertEqual(parent["path"] as? String, "base.pgsnap")
        XCTAssertEqual(parent["depth"] as? Int, 1)

        XCTAssertEqual(try run(["restore", "child.pgsnap", "out.img", "-q"]).status, 0)
        try assertSameImage("out.img", "src.img")
        let verify = try run(["verify", "child.pgsnap"])
        XCTAssertEqual(verify.status, 0, verify.stderr)
        XCTAssertTrue(verify.stdoutText.contains("and its chain of 1 parent"), verify.stdoutText)

        let inspect = try json(try run(["inspect", "child.pgsnap", "--json"]))
        let chain = try XCTUnwrap(inspect["chain"] as? [[String: Any]])
        XCTAssertEqual(chain.map { $0["link"] as? Int }, [0, 1])
        XCTAssertEqual(chain[1]["checkpoint"] as? String, "./base.pgsnap")
        XCTAssertEqual(chain[0]["identity"] as? String, inspect["identity"] as? String)
        XCTAssertEqual((inspect["parent"] as? [String: Any])?["identity"] as? String, chain[1]["identity"] as? String)
        XCTAssertEqual((chain[0]["referencedBytes"] as? [String: Any])?["1"] as? Int, report["referencedBytes"] as? Int)

        let flatten = try run(["flatten", "child.pgsnap", "flat.pgsnap", "--json", "-q"])
        XCTAssertEqual(flatten.status, 0, flatten.stderr)
        XCTAssertNil(try json(flatten)["parent"])
        XCTAssertEqual(unlink(dir.path("base.pgsnap")), 0)
        XCTAssertEqual(try run(["restore", "flat.pgsnap", "flat.img", "-q"]).status, 0)
        try assertSameImage("flat.img", "src.img")
    }

    func testBrokenChainsExit79AndNameTheLink() throws {
        XCTAssertEqual(try run(["save", "src.img", "child.pgsnap", "--parent", "base.pgsnap", "-q"]).status, 0)
        try FileManager.default.createDirectory(atPath: dir.path("old"), withIntermediateDirectories: false)
        XCTAssertEqual(rename(dir.path("base.pgsnap"), dir.path("old/base.pgsnap")), 0)
        let old = Array("precious\n".utf8)
        try Data(old).write(to: dir.url.appendingPathComponent("out.img"))
        for args in [["restore", "child.pgsnap", "out.img"], ["verify", "child.pgsnap"], ["inspect", "child.pgsnap"],
                     ["flatten", "child.pgsnap", "flat.pgsnap"], ["restore", "child.pgsnap", "--exec", "--", "true"]] {
            let r = try run(args)
            assertFailure(r, status: 79, mentioning: "link 1 of the chain", "\(args)")
        }
        XCTAssertEqual(try contents(dir.path("out.img")), old, "a failed restore left OUTPUT alone")
        XCTAssertEqual(try run(["verify", "child.pgsnap", "--parent-dir", "old"]).status, 0)

        // A changed parent.
        XCTAssertEqual(try run(["save", "src.img", "base.pgsnap", "-q"]).status, 0)
        let changed = try run(["restore", "child.pgsnap", "out.img"])
        assertFailure(changed, status: 79, mentioning: "changed since child.pgsnap was saved")
        // Saving over a link of the chain is a usage error.
        assertFailure(
            try run(["save", "src.img", "old/base.pgsnap", "--parent", "child.pgsnap", "--parent-dir", "old"]), status: 64,
            mentioning: "is a link of its parent's chain")
        // A parent that is not a checkpoint: 65, naming it.
        try Data("not a checkpoint".utf8).write(to: dir.url.appendingPathComponent("base.pgsnap"))
        assertFailure(try run(["verify", "child.pgsnap"]), status: 65, mentioning: "base.pgsnap")
    }
}
