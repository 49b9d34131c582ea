#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Workloads
import XCTest

/// Runs the built `pgsnap` binary and looks at what it did.
///
/// The binary is the one `swift build` / `swift test` put next to the test
/// bundle (`.build/<config>/pgsnap`); set PGSNAP_BINARY to use another.
enum PGSnap {
    static let binary: String = {
        if let path = ProcessInfo.processInfo.environment["PGSNAP_BINARY"] {
            return path
        }
        // The test bundle is an executable on Linux: .build/<config>/<package>PackageTests.xctest.
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("pgsnap").path
    }()

    /// What a run of pgsnap did.
    struct Result {
        var status: Int32
        var stdout: Data
        var stderr: String

        var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
        /// Lines of stderr, without the final newline.
        var stderrLines: [String] {
            stderr.split(separator: "\n", omittingEmptySubsequences: false).dropLast(stderr.hasSuffix("\n") ? 1 : 0).map(String.init)
        }
    }

    /// Runs pgsnap with `arguments` in `directory`, stdin from the file
    /// `stdin` (or /dev/null), and waits. Output goes through files, so no
    /// pipe can fill up.
    static func run(
        _ arguments: [String], in directory: URL, stdin: String? = nil, environment: [String: String] = [:],
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> Result {
        let out = directory.appendingPathComponent(".stdout-\(UUID().uuidString)")
        let err = directory.appendingPathComponent(".stderr-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        defer {
            try? FileManager.default.removeItem(at: out)
            try? FileManager.default.removeItem(at: err)
        }
        let process = try makeProcess(arguments, in: directory, environment: environment)
        process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: stdin ?? "/dev/null"))
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, stdout: try Data(contentsOf: out),
            stderr: String(decoding: try Data(contentsOf: err), as: UTF8.self))
    }

    /// Runs `first | second`, each with its own stderr, and returns both.
    static func pipe(_ first: [String], into second: [String], in directory: URL) throws -> (Result, Result) {
        var fds: [Int32] = [0, 0]
        guard Glibc.pipe(&fds) == 0, fcntl(fds[0], F_SETFD, FD_CLOEXEC) == 0, fcntl(fds[1], F_SETFD, FD_CLOEXEC) == 0 else {
            throw POSIXError(.EIO)
        }
        let reader = FileHandle(fileDescriptor: fds[0], closeOnDealloc: true)
        let writer = FileHandle(fileDescriptor: fds[1], closeOnDealloc: true)
        let out = directory.appendingPathComponent(".stdout-\(UUID().uuidString)")
        let errs = (0..<2).map { _ in directory.appendingPathComponent(".stderr-\(UUID().uuidString)") }
        for url in [out] + errs {
            _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        }
        defer {
            for url in [out] + errs {
                try? FileManager.default.removeItem(at: url)
            }
        }
        let p1 = try makeProcess(first, in: directory)
        p1.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/dev/null"))
        p1.standardOutput = writer
        p1.standardError = try FileHandle(forWritingTo: errs[0])
        let p2 = try makeProcess(second, in: directory)
        p2.standardInput = reader
        p2.standardOutput = try FileHandle(forWritingTo: out)
        p2.standardError = try FileHandle(forWritingTo: errs[1])
        try p1.run()
        try p2.run()
        try writer.close()
        try reader.close()
        p1.waitUntilExit()
        p2.waitUntilExit()
        let r1 = Result(status: p1.terminationStatus, stdout: Data(), stderr: String(decoding: try Data(contentsOf: errs[0]), as: UTF8.self))
        let r2 = Result(
            status: p2.terminationStatus, stdout: try Data(contentsOf: out),
            stderr: String(decoding: try Data(contentsOf: errs[1]), as: UTF8.self))
        return (r1, r2)
    }

    /// Runs pgsnap on a pseudo-terminal (stdin, stdout and stderr all on
    /// it, through python3's pty module); returns its exit status and
    /// everything it wrote.
    static func runInTerminal(_ arguments: [String], in directory: URL) throws -> (status: Int32, output: String) {
        let script = "import os, pty, sys; sys.exit(os.waitstatus_to_exitcode(pty.spawn(sys.argv[1:])))"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, binary] + arguments
        process.currentDirectoryURL = directory
        let out = Pipe()
        process.standardOutput = out
        process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/dev/null"))
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }

    private static func makeProcess(_ arguments: [String], in directory: URL, environment: [String: String] = [:]) throws -> Process {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw HarnessError("no pgsnap binary at \(binary): build it first (swift build --product pgsnap) or set PGSNAP_BINARY")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.currentDirectoryURL = directory
        var env = ProcessInfo.processInfo.environment
        // Help text is wrapped to the terminal width: fix it.
        env["COLUMNS"] = "80"
        for (k, v) in environment {
            env[k] = v
        }
        process.environment = env
        return process
    }
}

/// Skips the test when python3 (used to play another process, or a
/// terminal) is not installed.
func requirePython() throws {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    let found = path.split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/python3") }
    if !found {
        throw XCTSkip("python3 is not installed")
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A directory for one test, on tmpfs when there is one (its block counts
/// are exact: no extent-tree blocks), removed at the end.
final class Scratch {
    let url: URL

    init(_ name: String = #function) throws {
        let base = FileManager.default.isWritableFile(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let clean = name.filter { $0.isLetter || $0.isNumber }
        url = URL(fileURLWithPath: base).appendingPathComponent("pgsnap-test-\(clean)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(at: url)
    }

    func path(_ name: String) -> String {
        url.appendingPathComponent(name).path
    }
}

/// A sparse raw image with known contents.
struct SparseImage {
    /// Byte length (need not be a multiple of 4096).
    var length: Int
    /// Written extents: offset and bytes. Written zeros count as written.
    var extents: [(offset: Int, bytes: [UInt8])]

    /// The reference image of the tests: about 8 MiB with holes, text,
    /// incompressible bytes, a written all-zero page, a mostly-zero page,
    /// an extent that does not start or end on a page boundary, and a last
    /// partial page. Deterministic.
    static func reference() -> SparseImage {
        var rng = SplitMix64(seed: 42)
        func random(_ n: Int) -> [UInt8] {
            (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        }
        func text(_ n: Int, _ shift: Int) -> [UInt8] {
            (0..<n).map { i in i % 64 >= 48 ? 0x20 : UInt8(0x61 + (i + shift) % 26) }
        }
        var mostlyZero = [UInt8](repeating: 0, count: 4096)
        mostlyZero[100] = 1
        mostlyZero[4000] = 0xFF
        return SparseImage(
            length: (8 << 20) + 1234,
            extents: [
                (0, text(4096, 0)),
                (3 * 4096, random(8 * 4096)),
                (11 * 4096, [UInt8](repeating: 0, count: 4096)),
                ((1 << 20) + 100, text(300_000, 7)),
                (2 << 20, mostlyZero),
                ((3 << 20) + 4096, random(64 * 4096)),
                ((3 << 20) + 65 * 4096, text(200 * 4096, 3)),
                ((5 << 20) - 10, random(20)),
                (8 << 20, random(1234)),
            ])
    }

    /// The whole image in memory, holes as zeros.
    var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: length)
        for e in extents {
            out.replaceSubrange(e.offset..<e.offset + e.bytes.count, with: e.bytes)
        }
        return out
    }

    /// Writes the image to `path` (pwrite of each extent; holes elsewhere).
    func write(to path: String) throws {
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno)!) }
        defer { close(fd) }
        guard ftruncate(fd, off_t(length)) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno)!) }
        for e in extents {
            let n = e.bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, off_t(e.offset)) }
            guard n == e.bytes.count else { throw POSIXError(.EIO) }
        }
    }

    /// Pages (4096 bytes, the last one partial) that hold a non-zero byte.
    var nonZeroPages: Int {
        let b = bytes
        return stride(from: 0, to: length, by: 4096).filter { start in
            b[start..<min(start + 4096, length)].contains { $0 != 0 }
        }.count
    }
}

/// `stat` of a path.
func status(_ path: String) throws -> stat {
    var st = stat()
    guard stat(path, &st) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno)!) }
    return st
}

/// The contents of a file.
func contents(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

/// Parses JSON output into a dictionary.
func jsonObject(_ data: Data, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
    let value = try JSONSerialization.jsonObject(with: data)
    return try XCTUnwrap(value as? [String: Any], "not a JSON object: \(String(decoding: data, as: UTF8.self))", file: file, line: line)
}

/// Asserts that a run failed with `status` and printed exactly one line
/// on stderr, `pgsnap: ...`, mentioning `mentioning`.
func assertFailure(
    _ result: PGSnap.Result, status: Int32, mentioning: String? = nil, _ message: String = "",
    file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertEqual(result.status, status, "\(message): stderr: \(result.stderr)", file: file, line: line)
    let lines = result.stderrLines
    XCTAssertEqual(lines.count, 1, "\(message): expected one stderr line, got \(lines)", file: file, line: line)
    XCTAssertTrue(result.stderr.hasPrefix("pgsnap: "), "\(message): \(result.stderr)", file: file, line: line)
    if let mentioning {
        XCTAssertTrue(result.stderr.contains(mentioning), "\(message): \(result.stderr) does not name \(mentioning)", file: file, line: line)
    }
}
