#if canImport(Glibc)
import Glibc
#endif
import CLinuxShim
import Foundation
import Workloads
import XCTest

/// `pgsnap serve-uffd` against a client that does what Firecracker does on
/// snapshot load (`FirecrackerClient`): the client runs in a child process
/// (this test binary, re-run on this test), the VMM whose exit ends the
/// server.
final class ServeUffdTests: XCTestCase {
    static let clientVariable = "PGSNAP_FC_CLIENT"
    static let regionSizes = [24 << 20, 8 << 20]

    /// The memory file: every third page a W-save page (some of them all
    /// zero), holes elsewhere.
    static func writeImage(_ path: String) throws {
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw HostErrorForTests("open \(path)") }
        defer { close(fd) }
        let total = regionSizes.reduce(0, +)
        ftruncate(fd, off_t(total))
        let page = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { page.deallocate() }
        for p in stride(from: 0, to: total / 4096, by: 3) {
            WSave.fillPage(page, UInt64(p))
            _ = pwrite(fd, page, 4096, off_t(p * 4096))
        }
    }

    /// In the child: plays the VMM. Returns what went wrong, if anything.
    static func runClient(socket: String, image: String) -> String? {
        do {
            let client = try FirecrackerClient(regionSizes: regionSizes)
            try client.connect(to: socket)
            let expected = try Data(contentsOf: URL(fileURLWithPath: image))
            let total = regionSizes.reduce(0, +)
            let bad = StateBox()
            // Two threads read every page in opposite orders: the same
            // pages fault from both.
            DispatchQueue.concurrentPerform(iterations: 2) { t in
                for i in 0..<(total / 4096) {
                    let p = t == 0 ? i : total / 4096 - 1 - i
                    let got = client.pointer(ofOffset: UInt64(p * 4096))!
                    let same = expected.withUnsafeBytes { memcmp(got, $0.baseAddress! + p * 4096, 4096) == 0 }
                    if !same { bad.add("page \(p) differs") }
                }
            }
            if let first = bad.first { return first }
            // A balloon takes 1 MiB back: it reads as zero afterwards.
            let removed = client.pointer(ofOffset: 4 << 20)!
            guard madvise(removed, 1 << 20, MADV_DONTNEED) == 0 else { return "madvise: errno \(errno)" }
            for off in stride(from: 0, to: 1 << 20, by: 4096) where removed.load(fromByteOffset: off, as: UInt64.self) != 0 {
                return "page at \(4 << 20 + off) not zero after removal"
            }
            // A page never stored takes a write.
            let hole = client.pointer(ofOffset: UInt64(regionSizes[0] + 4096))!
            hole.storeBytes(of: 0x1234_5678, as: UInt64.self)
            if hole.load(as: UInt64.self) != 0x1234_5678 { return "a write to a hole did not stick" }
            return nil
        } catch {
            return "\(error)"
        }
    }

    func testServesAFirecrackerStyleVMMUntilItExits() throws {
        try serve(test: "testServesAFirecrackerStyleVMMUntilItExits")
    }

    /// A signed and encrypted checkpoint, served with the keys that open
    /// and trust it; without them, refused before the VMM comes.
    func testServesASignedEncryptedCheckpoint() throws {
        try serve(
            test: "testServesASignedEncryptedCheckpoint", keygen: [["keygen", "signer"], ["keygen", "--encryption", "vm"]],
            saveArguments: ["--sign", "signer", "--encrypt-to", "vm.pub"], serveArguments: ["--identity", "vm", "--trust", "signer.pub"])
    }

    /// In the child (the client's environment variable set): plays the
    /// VMM. In the test: saves the image with `saveArguments` (after the
    /// `keygen` runs), serves it with `serveArguments` to the client, a
    /// child running `test`, and checks what the server did.
    private func serve(test: String, keygen: [[String]] = [], saveArguments: [String] = [], serveArguments: [String] = []) throws {
        if let setting = ProcessInfo.processInfo.environment[Self.clientVariable] {
            let parts = setting.split(separator: "|").map(String.init)
            if let failure = Self.runClient(socket: parts[0], image: parts[1]) {
                FileHandle.standardError.write("client: \(failure)\n".data(using: .utf8)!)
                exit(1)
            }
            exit(0)
        }
        let dir = try Scratch()
        let image = dir.path("mem.img")
        try Self.writeImage(image)
        for arguments in keygen {
            let r = try PGSnap.run(arguments + ["--quiet"], in: dir.url)
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        let save = try PGSnap.run(["save", "mem.img", "mem.pgsnap", "--frame-size", "512KiB", "--quiet"] + saveArguments, in: dir.url)
        XCTAssertEqual(save.status, 0, save.stderr)
        if !serveArguments.isEmpty {
            let refused = try PGSnap.run(["serve-uffd", "mem.pgsnap", "--socket", dir.path("refused.sock")], in: dir.url)
            XCTAssertEqual(refused.status, 81, refused.stderr)
            XCTAssertEqual(refused.stderrLines.count, 1, refused.stderr)
        }

        let socketPath = dir.path("uffd.sock")
        let server = Process()
        server.executableURL = URL(fileURLWithPath: PGSnap.binary)
        server.currentDirectoryURL = dir.url
        server.arguments = ["serve-uffd", dir.path("mem.pgsnap"), "--socket", socketPath, "--json"] + serveArguments
        let serverErr = Pipe()
        let serverOut = Pipe()
        server.standardError = serverErr
        server.standardOutput = serverOut
        try server.run()
        // Ready once it says so.
        let ready = serverErr.fileHandleForReading.availableData
        XCTAssertTrue(String(decoding: ready, as: UTF8.self).contains("listening on"), String(decoding: ready, as: UTF8.self))

        let client = Process()
        client.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        client.arguments = ["PGSnapTests.ServeUffdTests/\(test)"]
        var environment = ProcessInfo.processInfo.environment
        environment[Self.clientVariable] = socketPath + "|" + image
        client.environment = environment
        let clientErr = Pipe()
        client.standardError = clientErr
        client.standardOutput = FileHandle.nullDevice
        try client.run()
        let clientText = String(decoding: clientErr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        client.waitUntilExit()
        XCTAssertEqual(client.terminationStatus, 0, "the client failed: \(clientText)")

        // The VMM is gone: the server ends by itself.
        let deadline = Date().addingTimeInterval(20)
        while server.isRunning && Date() < deadline {
            usleep(50_000)
        }
        if server.isRunning {
            server.terminate()
            XCTFail("serve-uffd did not end after the VMM exited")
        }
        let rest = String(decoding: serverErr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(server.terminationStatus, 0, rest)
        XCTAssertTrue(rest.contains("served"), rest)
        let json = try JSONSerialization.jsonObject(with: serverOut.fileHandleForReading.readDataToEndOfFile()) as? [String: Any]
        XCTAssertEqual(json?["regions"] as? Int, 2)
        XCTAssertEqual(json?["framesFailed"] as? Int, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: socketPath), "the socket is removed")
    }

    func testRefusesAMemoryThatIsNotTheCheckpoints() throws {
        let dir = try Scratch()
        let image = dir.path("mem.img")
        try Self.writeImage(image)
        _ = try PGSnap.run(["save", "mem.img", "mem.pgsnap", "--quiet"], in: dir.url)
        let socketPath = dir.path("s")
        let server = Process()
        server.executableURL = URL(fileURLWithPath: PGSnap.binary)
        server.arguments = ["serve-uffd", dir.path("mem.pgsnap"), "--socket", socketPath]
        let serverErr = Pipe()
        server.standardError = serverErr
        try server.run()
        _ = serverErr.fileHandleForReading.availableData
        // One region, smaller than the memory file: the stored pages beyond
        // it belong to no region.
        let client = try FirecrackerClient(regionSizes: [8 << 20])
        try client.connect(to: socketPath)
        server.waitUntilExit()
        let text = String(decoding: serverErr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertNotEqual(server.terminationStatus, 0)
        XCTAssertTrue(text.contains("outside every region"), text)
        XCTAssertEqual(text.split(separator: "\n").count, 1, "one line: \(text)")
    }
}

/// Collects messages from several threads.
final class StateBox: @unchecked Sendable {
    private let lock = NSLock()
    private var messages: [String] = []

    func add(_ m: String) {
        lock.lock()
        if messages.count < 10 { messages.append(m) }
        lock.unlock()
    }

    var first: String? {
        lock.lock()
        defer { lock.unlock() }
        return messages.first
    }
}

struct HostErrorForTests: Error {
    let call: String
    init(_ call: String) { self.call = call }
}
