#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest

/// pgsnap save and restore on memory it did not allocate: raw images,
/// pipes, another process's memfd, and the --exec handover.
final class RoundTripTests: XCTestCase {
    /// A raw image comes back byte for byte, with its holes: the restored
    /// image allocates exactly the pages holding a non-zero byte, never
    /// more than the source.
    func testRawImageRoundTripKeepsBytesAndHoles() throws {
        let dir = try Scratch()
        let image = SparseImage.reference()
        try image.write(to: dir.path("src.img"))

        let save = try PGSnap.run(["save", "src.img", "ck.pgsnap", "--frame-size", "64KiB"], in: dir.url)
        XCTAssertEqual(save.status, 0, save.stderr)
        XCTAssertEqual(save.stderrLines.count, 1, "one summary line: \(save.stderr)")
        XCTAssertTrue(save.stdout.isEmpty)
        let restore = try PGSnap.run(["restore", "ck.pgsnap", "out.img"], in: dir.url)
        XCTAssertEqual(restore.status, 0, restore.stderr)

        XCTAssertEqual(try contents(dir.path("out.img")), image.bytes)
        let source = try status(dir.path("src.img"))
        let restored = try status(dir.path("out.img"))
        XCTAssertEqual(restored.st_size, off_t(image.length))
        XCTAssertLessThanOrEqual(restored.st_blocks, source.st_blocks)
        if dir.url.path.hasPrefix("/dev/shm") {
            // tmpfs counts exactly the pages a file holds.
            XCTAssertEqual(Int(restored.st_blocks) * 512, image.nonZeroPages * 4096)
        }
    }

    /// `pgsnap save IMG - | pgsnap restore - OUT`; the checkpoint on stdout
    /// is the same bytes as the one written to a path.
    func testSaveToStdoutPipedIntoRestoreFromStdin() throws {
        let dir = try Scratch()
        let image = SparseImage.reference()
        try image.write(to: dir.path("src.img"))

        let (save, restore) = try PGSnap.pipe(["save", "src.img", "-"], into: ["restore", "-", "out.img"], in: dir.url)
        XCTAssertEqual(save.status, 0, save.stderr)
        XCTAssertEqual(restore.status, 0, restore.stderr)
        XCTAssertTrue(restore.stderr.contains("restored stdin to out.img"), restore.stderr)
        XCTAssertEqual(try contents(dir.path("out.img")), image.bytes)

        // The same creation time for both: the bytes are then the same.
        let fixedTime = ["SOURCE_DATE_EPOCH": "1764500000"]
        let toStdout = try PGSnap.run(["save", "src.img", "-"], in: dir.url, environment: fixedTime)
        XCTAssertEqual(toStdout.status, 0, toStdout.stderr)
        XCTAssertEqual(try PGSnap.run(["save", "src.img", "ck.pgsnap"], in: dir.url, environment: fixedTime).status, 0)
        XCTAssertEqual([UInt8](toStdout.stdout), try contents(dir.path("ck.pgsnap")))

        // inspect and verify read stdin too.
        let (_, verify) = try PGSnap.pipe(["save", "src.img", "-"], into: ["verify", "-"], in: dir.url)
        XCTAssertEqual(verify.status, 0, verify.stderr)
        XCTAssertTrue(verify.stdoutText.hasPrefix("OK: "), verify.stdoutText)
        let (_, inspect) = try PGSnap.pipe(["save", "src.img", "-"], into: ["inspect", "-", "--json"], in: dir.url)
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        XCTAssertEqual(try jsonObject(inspect.stdout)["dataSize"] as? Int, image.length)
    }

    /// The same input and options give the same checkpoint bytes, whatever
    /// the number of threads (with the creation time fixed, as
    /// SOURCE_DATE_EPOCH does).
    func testCheckpointsAreByteDeterministic() throws {
        let dir = try Scratch()
        try SparseImage.reference().write(to: dir.path("src.img"))
        var files: [[UInt8]] = []
        for (i, threads) in ["1", "2", "2", "3"].enumerated() {
            // A fixed `created` annotation: the saves may span a second.
            let r = try PGSnap.run(
                ["save", "src.img", "ck\(i).pgsnap", "--frame-size", "64KiB", "--threads", threads, "-q"], in: dir.url,
                environment: ["SOURCE_DATE_EPOCH": "1764514800"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(r.stderr, "", "--quiet prints nothing")
            files.append(try contents(dir.path("ck\(i).pgsnap")))
        }
        for f in files.dropFirst() {
            XCTAssertEqual(f, files[0])
        }
    }

    /// A live memfd of another process, saved through /proc/PID/fd/N,
    /// restores to its contents; the process's memfd is not changed and
    /// does not commit a page more.
    func testLiveMemfdOfAnotherProcess() throws {
        try requirePython()
        let dir = try Scratch()
        let image = SparseImage.reference()
        try image.write(to: dir.path("expected.img"))

        // The child copies the image's extents into a new memfd, prints
        // its pid and descriptor, and waits for its stdin to close.
        let script = """
            import os, sys
            src, size = sys.argv[1], int(sys.argv[2])
            fd = os.memfd_create("pgsnap-test", 0)
            os.ftruncate(fd, size)
            with open(src, "rb") as f:
                for extent in sys.argv[3:]:
                    off, n = map(int, extent.split(":"))
                    f.seek(off)
                    os.pwrite(fd, f.read(n), off)
            print(os.getpid(), fd, flush=True)
            sys.stdin.read()
            """
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        child.arguments = ["python3", "-c", script, dir.path("expected.img"), String(image.length)]
            + image.extents.map { "\($0.offset):\($0.bytes.count)" }
        let input = Pipe()
        let output = Pipe()
        child.standardInput = input
        child.standardOutput = output
        try child.run()
        defer {
            try? input.fileHandleForWriting.close()
            child.waitUntilExit()
        }
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { break }
            line += chunk
        }
        let fields = String(decoding: line, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" })
        XCTAssertEqual(fields.count, 2, "child said \(String(decoding: line, as: UTF8.self))")
        guard fields.count == 2 else { return }
        let memfd = "/proc/\(fields[0])/fd/\(fields[1])"

        let before = try status(memfd)
        let save = try PGSnap.run(["save", memfd, "ck.pgsnap", "--kind", "tmpfs"], in: dir.url)
        XCTAssertEqual(save.status, 0, save.stderr)
        let after = try status(memfd)
        XCTAssertEqual(after.st_blocks, before.st_blocks, "the save committed pages of the memfd")
        XCTAssertEqual(after.st_size, before.st_size)
        XCTAssertEqual(try contents(memfd), image.bytes, "the save changed the memfd")

        let restore = try PGSnap.run(["restore", "ck.pgsnap", "out.img"], in: dir.url)
        XCTAssertEqual(restore.status, 0, restore.stderr)
        XCTAssertEqual(try contents(dir.path("out.img")), image.bytes)

        let inspect = try PGSnap.run(["inspect", "ck.pgsnap", "--json"], in: dir.url)
        let json = try jsonObject(inspect.stdout)
        let stored = try XCTUnwrap(json["storedPerKind"] as? [String: Int])
        // Pages repeated in the image are stored once, and referenced.
        XCTAssertEqual((stored["tmpfs"] ?? 0) + (json["referencedBytes"] as? Int ?? 0), image.nonZeroPages * 4096, "--kind tmpfs")
    }

    /// `restore --exec` replaces pgsnap by the command, which finds the
    /// restored memory in the memfd named by PGSNAP_MEMFD.
    func testExecHandsOverTheMemfd() throws {
        try requirePython()
        let dir = try Scratch()
        let image = SparseImage.reference()
        try image.write(to: dir.path("src.img"))
        XCTAssertEqual(try PGSnap.run(["save", "src.img", "ck.pgsnap"], in: dir.url).status, 0)

        let script = """
            import fcntl, os, sys
            fd = int(os.environ["PGSNAP_MEMFD"])
            size = int(os.environ["PGSNAP_MEMFD_SIZE"])
            assert os.fstat(fd).st_size == size, (os.fstat(fd).st_size, size)
            assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC == 0
            sys.stdout.buffer.write(os.pread(fd, int(sys.argv[1]), 0))
            sys.stderr.write("pid=%d fd=%d size=%d\\n" % (os.getpid(), fd, size))
            """
        for checkpoint in ["ck.pgsnap", "-"] {
            let r = try PGSnap.run(
                ["restore", checkpoint, "-q", "--exec", "--", "python3", "-c", script, String(image.length)], in: dir.url,
                stdin: checkpoint == "-" ? dir.path("ck.pgsnap") : nil)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual([UInt8](r.stdout), image.bytes, "the command read other bytes from the memfd")
            XCTAssertTrue(r.stderr.contains("size=1073741824"), r.stderr)
        }
    }

    /// inspect's frame offsets and header lengths point at the frame
    /// records and their zstd payloads.
    func testInspectFramesPointAtTheRecords() throws {
        let dir = try Scratch()
        try SparseImage.reference().write(to: dir.path("src.img"))
        XCTAssertEqual(try PGSnap.run(["save", "src.img", "ck.pgsnap", "--frame-size", "64KiB"], in: dir.url).status, 0)
        let bytes = try contents(dir.path("ck.pgsnap"))
        let json = try jsonObject(try PGSnap.run(["inspect", "ck.pgsnap", "--json"], in: dir.url).stdout)
        let frames = try XCTUnwrap(json["frames"] as? [[String: Int]])
        XCTAssertEqual(frames.count, json["frameCount"] as? Int)
        XCTAssertGreaterThan(frames.count, 1)
        for frame in frames {
            let offset = frame["offset"]!
            let payload = offset + frame["headerLength"]!
            XCTAssertEqual(Array(bytes[offset..<offset + 4]), Array("FRM1".utf8), "frame at \(offset)")
            XCTAssertEqual(Array(bytes[payload..<payload + 4]), [0x28, 0xB5, 0x2F, 0xFD], "zstd magic at \(payload)")
        }
    }

    /// Sizes are read in powers of 1024, in every spelling.
    func testSizeSpellings() throws {
        let dir = try Scratch()
        try SparseImage.reference().write(to: dir.path("src.img"))
        for (spelling, bytes) in [("4096", 4096), ("4k", 4096), ("64KiB", 65536), ("1M", 1 << 20), ("2mib", 2 << 20), ("64MiB", 64 << 20)] {
            let save = try PGSnap.run(["save", "src.img", "ck.pgsnap", "--frame-size", spelling], in: dir.url)
            XCTAssertEqual(save.status, 0, "\(spelling): \(save.stderr)")
            let inspect = try PGSnap.run(["inspect", "ck.pgsnap", "--json"], in: dir.url)
            XCTAssertEqual(try jsonObject(inspect.stdout)["frameLimit"] as? Int, bytes, spelling)
        }
        // Larger units parse (then fail the frame-size range, naming the size read).
        for (spelling, shown) in [("1GiB", "1GiB"), ("2G", "2GiB"), ("1t", "1TiB")] {
            let r = try PGSnap.run(["save", "src.img", "ck.pgsnap", "--frame-size", spelling], in: dir.url)
            assertFailure(r, status: 64, mentioning: "--frame-size \(shown) must be", spelling)
        }
    }
}
