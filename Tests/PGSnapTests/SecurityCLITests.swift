#if canImport(Glibc)
import Glibc
#endif
import Checkpoint
import Foundation
import XCTest

/// `pgsnap keygen`, and signed and encrypted checkpoints through the
/// command line: key files and their permissions, what each command
/// requires of the keys, the exit statuses 80 and 81, inspect's report.
final class SecurityCLITests: XCTestCase {
    private var dir: Scratch!

    override func setUpWithError() throws {
        dir = try Scratch(name)
        try SparseImage.reference().write(to: dir.path("src.img"))
        for args in [["keygen", "signer"], ["keygen", "other"], ["keygen", "--encryption", "vm"], ["keygen", "--encryption", "vm2"], ["keygen", "--symmetric", "sym"]] {
            let r = try run(args + ["--quiet"])
            XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)")
            XCTAssertEqual(r.stderr, "", "\(args): --quiet")
        }
    }

    override func tearDown() {
        dir = nil
    }

    private func run(_ arguments: [String], stdin: String? = nil) throws -> PGSnap.Result {
        try PGSnap.run(arguments, in: dir.url, stdin: stdin)
    }

    private func mode(_ name: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: dir.path(name))[.posixPermissions] as? Int) ?? -1
    }

    private func assertFailure(_ r: PGSnap.Result, _ status: Int32, _ text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, status, r.stderr, file: file, line: line)
        XCTAssertEqual(r.stderrLines.count, 1, "one line: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.hasPrefix("pgsnap: "), r.stderr, file: file, line: line)
        XCTAssertTrue(r.stderr.contains(text), "\(r.stderr) should say \(text)", file: file, line: line)
        XCTAssertEqual(r.stdout.count, 0, file: file, line: line)
    }

    func testKeygenWritesKeyFilesAndNeverReplacesOne() throws {
        XCTAssertEqual(try mode("signer"), 0o600)
        XCTAssertEqual(try mode("signer.pub"), 0o644)
        XCTAssertEqual(try mode("sym"), 0o600)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("sym.pub")))
        for (name, header) in [
            ("signer", "pgsnap-ed25519-private-v1"), ("signer.pub", "pgsnap-ed25519-public-v1"), ("vm", "pgsnap-x25519-private-v1"),
            ("vm.pub", "pgsnap-x25519-public-v1"), ("sym", "pgsnap-symmetric-key-v1"),
        ] {
            let lines = try String(contentsOfFile: dir.path(name), encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
            XCTAssertEqual(lines.count, 3, name)
            XCTAssertEqual(String(lines[0]), header)
            XCTAssertEqual(Data(base64Encoded: String(lines[1]))?.count, 32, name)
        }
        let r = try run(["keygen", "fresh", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let object = try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any]
        XCTAssertEqual(object?["kind"] as? String, "ed25519")
        XCTAssertEqual(object?["privateKey"] as? String, "fresh")
        XCTAssertEqual(object?["publicKey"] as? String, "fresh.pub")
        XCTAssertTrue((object?["fingerprint"] as? String)?.hasPrefix("ed25519:") == true)

        let before = try Data(contentsOf: URL(fileURLWithPath: dir.path("signer")))
        assertFailure(try run(["keygen", "signer"]), 64, "never replaces")
        assertFailure(try run(["keygen", "--symmetric", "vm.pub"]), 64, "never replaces")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.path("signer"))), before)
        // NAME.pub in the way: no private key is left behind either.
        XCTAssertTrue(FileManager.default.createFile(atPath: dir.path("lonely.pub"), contents: Data("x".utf8)))
        assertFailure(try run(["keygen", "lonely"]), 64, "lonely.pub exists")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("lonely")))
        assertFailure(try run(["keygen", "--encryption", "--symmetric", "both"]), 64, "not both")
    }

    func testKeygenIgnoresTheUmaskForPrivateKeys() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "umask 0 && exec \"$0\" keygen --quiet loose", PGSnap.binary]
        process.currentDirectoryURL = dir.url
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        XCTAssertEqual(try mode("loose"), 0o600)
        XCTAssertEqual(try mode("loose.pub"), 0o644)
    }

    func testSignedEncryptedRoundTrip() throws {
        let save = try run(["save", "src.img", "ck.pgsnap", "--sign", "signer", "--encrypt-to", "vm.pub", "--encrypt-key", "sym", "--json"])
        XCTAssertEqual(save.status, 0, save.stderr)
        let saved = try JSONSerialization.jsonObject(with: save.stdout) as? [String: Any]
        let identity = try XCTUnwrap(saved?["identity"] as? String)
        XCTAssertEqual(identity.count, 64)

        for keys in [["--identity", "vm"], ["--encrypt-key", "sym"], ["--identity", "vm2", "--identity", "vm"]] {
            let r = try run(["restore", "ck.pgsnap", "out.img", "--trust", "signer.pub", "--quiet"] + keys)
            XCTAssertEqual(r.status, 0, "\(keys): \(r.stderr)")
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.path("out.img"))), try Data(contentsOf: URL(fileURLWithPath: dir.path("src.img"))))
            XCTAssertEqual(try run(["verify", "ck.pgsnap", "--trust", "other.pub", "--trust", "signer.pub"] + keys).status, 0)
        }
        // From stdin, with the signature required.
        let streamed = try run(["restore", "-", "piped.img", "--trust", "signer.pub", "--identity", "vm", "--quiet"], stdin: dir.path("ck.pgsnap"))
        XCTAssertEqual(streamed.status, 0, streamed.stderr)

        let inspect = try run(["inspect", "ck.pgsnap", "--json", "--identity", "vm", "--trust", "other.pub"])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: inspect.stdout) as? [String: Any])
        XCTAssertEqual(report["identity"] as? String, identity)
        let signature = try XCTUnwrap(report["signature"] as? [String: Any])
        XCTAssertEqual(signature["valid"] as? Bool, true)
        XCTAssertEqual(signature["trusted"] as? Bool, false, "inspect reports --trust, it does not require it")
        let encryption = try XCTUnwrap(report["encryption"] as? [String: Any])
        XCTAssertEqual(encryption["cipher"] as? String, "AES-256-GCM")
        XCTAssertEqual((encryption["recipients"] as? [String])?.count, 2)
        XCTAssertTrue((encryption["recipients"] as? [String])?.first?.hasPrefix("x25519:") == true)
        let text = try run(["inspect", "ck.pgsnap", "--encrypt-key", "sym", "--trust", "signer.pub"])
        XCTAssertTrue(text.stdoutText.contains("identity          \(identity)"), text.stdoutText)
        XCTAssertTrue(text.stdoutText.contains("valid, trusted"), text.stdoutText)
        XCTAssertTrue(text.stdoutText.contains("AES-256-GCM, to x25519:"), text.stdoutText)

        // An unsigned, unencrypted checkpoint has its identity (from a
        // file), and neither signature nor encryption.
        XCTAssertEqual(try run(["save", "src.img", "plain.pgsnap", "--quiet"]).status, 0)
        let plain = try XCTUnwrap(try JSONSerialization.jsonObject(with: try run(["inspect", "plain.pgsnap", "--json"]).stdout) as? [String: Any])
        XCTAssertEqual((plain["identity"] as? String)?.count, 64)
        XCTAssertNil(plain["signature"])
        XCTAssertNil(plain["encryption"])
    }

    /// Writes a page of new bytes into src.img at `offset`.
    private func changeSource(at offset: Int, seed: UInt8) throws {
        let fd = open(dir.path("src.img"), O_WRONLY)
        defer { close(fd) }
        let page = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
        XCTAssertEqual(page.withUnsafeBytes { pwrite(fd, $0.baseAddress, 4096, off_t(offset)) }, 4096)
    }

    /// A chain read with the keys: save --parent of an encrypted parent
    /// (81 without a key), restore, verify, inspect and flatten of the
    /// child with them (81 without), a link signed by another key (80).
    func testChainsAreReadWithTheKeys() throws {
        let protect = ["--sign", "signer", "--encrypt-to", "vm.pub", "--quiet"]
        XCTAssertEqual(try run(["save", "src.img", "base.pgsnap"] + protect).status, 0)
        try changeSource(at: 8192, seed: 1)
        assertFailure(try run(["save", "src.img", "child.pgsnap", "--parent", "base.pgsnap"] + protect), 81, "encrypted (to x25519:")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("child.pgsnap")))
        let saved = try run(["save", "src.img", "child.pgsnap", "--parent", "base.pgsnap", "--identity", "vm", "--trust", "signer.pub"] + protect)
        XCTAssertEqual(saved.status, 0, saved.stderr)

        assertFailure(try run(["restore", "child.pgsnap", "out.img"]), 81, "encrypted (to x25519:")
        let restored = try run(["restore", "child.pgsnap", "out.img", "--identity", "vm", "--trust", "signer.pub", "-q"])
        XCTAssertEqual(restored.status, 0, restored.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.path("out.img"))), try Data(contentsOf: URL(fileURLWithPath: dir.path("src.img"))))
        let verify = try run(["verify", "child.pgsnap", "--identity", "vm", "--trust", "signer.pub"])
        XCTAssertEqual(verify.status, 0, verify.stderr)
        let inspect = try run(["inspect", "child.pgsnap", "--json", "--identity", "vm"])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: inspect.stdout) as? [String: Any])
        XCTAssertEqual((report["chain"] as? [[String: Any]])?.count, 2)
        assertFailure(try run(["flatten", "child.pgsnap", "flat.pgsnap", "--identity", "vm"]), 64, "not written in clear")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("flat.pgsnap")))
        let flatten = try run(["flatten", "child.pgsnap", "flat.pgsnap", "--identity", "vm", "--encrypt-to", "vm2.pub", "--sign", "signer", "-q"])
        XCTAssertEqual(flatten.status, 0, flatten.stderr)
        XCTAssertEqual(try run(["restore", "flat.pgsnap", "flat.img", "--identity", "vm2", "--trust", "signer.pub", "-q"]).status, 0)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.path("flat.img"))), try Data(contentsOf: URL(fileURLWithPath: dir.path("src.img"))))

        // A middle link signed by another key.
        try changeSource(at: 16384, seed: 2)
        let other = ["--sign", "other", "--encrypt-to", "vm.pub", "--identity", "vm", "--quiet"]
        XCTAssertEqual(try run(["save", "src.img", "middle.pgsnap", "--parent", "base.pgsnap"] + other).status, 0)
        try changeSource(at: 24576, seed: 3)
        XCTAssertEqual(try run(["save", "src.img", "leaf.pgsnap", "--parent", "middle.pgsnap", "--identity", "vm"] + protect).status, 0)
        assertFailure(try run(["restore", "leaf.pgsnap", "leaf.img", "--identity", "vm", "--trust", "signer.pub"]), 80, "not a trusted key")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("leaf.img")))
        assertFailure(try run(["verify", "leaf.pgsnap", "--identity", "vm", "--trust", "signer.pub"]), 80, "not a trusted key")
        let both = try run(["restore", "leaf.pgsnap", "leaf.img", "--identity", "vm", "--trust", "signer.pub", "--trust", "other.pub", "-q"])
        XCTAssertEqual(both.status, 0, both.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.path("leaf.img"))), try Data(contentsOf: URL(fileURLWithPath: dir.path("src.img"))))
    }

    // MARK: 80, 81

    func testSignatureProblemsExit80() throws {
        XCTAssertEqual(try run(["save", "src.img", "plain.pgsnap", "--quiet"]).status, 0)
        XCTAssertEqual(try run(["save", "src.img", "signed.pgsnap", "--sign", "signer", "--quiet"]).status, 0)
        assertFailure(try run(["verify", "plain.pgsnap", "--trust", "signer.pub"]), 80, "plain.pgsnap: not signed")
        assertFailure(try run(["restore", "signed.pgsnap", "out.img", "--trust", "other.pub"]), 80, "not a trusted key")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("out.img")))
        assertFailure(try run(["restore", "-", "out.img", "--trust", "other.pub"], stdin: dir.path("signed.pgsnap")), 80, "stdin: signed by")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("out.img")))
        // Without --trust, a signature is not required.
        XCTAssertEqual(try run(["verify", "signed.pgsnap"]).status, 0)
        XCTAssertEqual(try run(["verify", "plain.pgsnap"]).status, 0)

        // The signed checkpoint changed where no CRC sees it (an
        // annotation, its CRCs made right again): refused with --trust,
        // accepted without.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir.path("signed.pgsnap"))))
        func u32(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]) << 16 | Int(bytes[at + 3]) << 24 }
        func put(_ value: UInt32, at: Int) {
            for k in 0..<4 { bytes[at + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(k))) }
        }
        let count = u32(68)
        let entry = try XCTUnwrap((0..<count).map { 72 + 32 * $0 }.first { Array(bytes[$0..<$0 + 4]) == Array("ANNO".utf8) })
        let offset = u32(entry + 8)
        let length = u32(entry + 16)
        let source = try XCTUnwrap((offset...offset + length - 7).first { Array(bytes[$0..<$0 + 7]) == Array("src.img".utf8) })
        bytes[source + 6] = UInt8(ascii: "h")
        put(bytes[offset..<offset + length].withUnsafeBytes { CRC32C.checksum($0) }, at: entry + 24)
        put(bytes[64..<72 + 32 * count].withUnsafeBytes { CRC32C.checksum($0) }, at: 72 + 32 * count)
        try Data(bytes).write(to: URL(fileURLWithPath: dir.path("changed.pgsnap")))
        assertFailure(try run(["verify", "changed.pgsnap", "--trust", "signer.pub"]), 80, "changed after it was signed")
        XCTAssertEqual(try run(["verify", "changed.pgsnap"]).status, 0, "a CRC does not see it")
        XCTAssertTrue(try run(["inspect", "changed.pgsnap"]).stdoutText.contains("INVALID"))
    }

    func testEncryptedCheckpointsExit81WithoutAKeyThatOpensThem() throws {
        let save = try run(["save", "src.img", "ck.pgsnap", "--encrypt-to", "vm.pub", "--quiet"])
        XCTAssertEqual(save.status, 0, save.stderr)
        for args in [["inspect", "ck.pgsnap"], ["verify", "ck.pgsnap"], ["restore", "ck.pgsnap", "out.img"], ["restore", "-", "out.img"]] {
            let r = try run(args, stdin: args[1] == "-" ? dir.path("ck.pgsnap") : nil)
            assertFailure(r, 81, "encrypted (to x25519:")
            XCTAssertTrue(r.stderr.contains("give --identity KEY or --encrypt-key FILE"), r.stderr)
        }
        assertFailure(try run(["verify", "ck.pgsnap", "--identity", "vm2"]), 81, "none of the keys given")
        assertFailure(try run(["verify", "ck.pgsnap", "--encrypt-key", "sym"]), 81, "none of the keys given")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("out.img")))
        XCTAssertEqual(try run(["verify", "ck.pgsnap", "--identity", "vm"]).status, 0)
    }

    // MARK: Key files

    func testBadKeyFiles() throws {
        XCTAssertEqual(try run(["save", "src.img", "ck.pgsnap", "--sign", "signer", "--encrypt-key", "sym", "--quiet"]).status, 0)
        // A secret key others can read is refused, with the fix.
        chmod(dir.path("sym"), 0o640)
        assertFailure(try run(["verify", "ck.pgsnap", "--encrypt-key", "sym"]), 64, "run chmod 600")
        assertFailure(try run(["save", "src.img", "x.pgsnap", "--encrypt-key", "sym"]), 64, "mode 0640")
        chmod(dir.path("signer"), 0o604)
        assertFailure(try run(["save", "src.img", "x.pgsnap", "--sign", "signer"]), 64, "can be read or written by others")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("x.pgsnap")))
        chmod(dir.path("sym"), 0o600)
        // A public key may be read by anyone.
        chmod(dir.path("signer.pub"), 0o644)
        XCTAssertEqual(try run(["verify", "ck.pgsnap", "--trust", "signer.pub", "--encrypt-key", "sym"]).status, 0)
        // The wrong kind of key, something that is not a key, no file.
        assertFailure(try run(["verify", "ck.pgsnap", "--trust", "vm.pub", "--encrypt-key", "sym"]), 64, "where a pgsnap-ed25519-public-v1 key is needed")
        assertFailure(try run(["save", "src.img", "x.pgsnap", "--encrypt-to", "src.img"]), 64, "not a pgsnap key file")
        XCTAssertTrue(FileManager.default.createFile(atPath: dir.path("short"), contents: Data("pgsnap-ed25519-public-v1\nAAAA\n".utf8)))
        assertFailure(try run(["verify", "ck.pgsnap", "--trust", "short"]), 64, "base64 of 32 bytes")
        assertFailure(try run(["verify", "ck.pgsnap", "--trust", "missing.pub"]), 74, "missing.pub")
    }
}

/// The fixtures of fixtures/v2/secure through the command line, with the
/// test keys of fixtures/keys (copied, mode 0600): the good ones inspect
/// and verify; every broken one is refused by verify and restore with the
/// exit status of the error its manifest names (65, 80 or 81), and one
/// line on stderr.
final class SecureFixtureCLITests: XCTestCase {
    static let fixtures = FixtureCLITests.root.appendingPathComponent("v2/secure")

    private var dir: Scratch!

    override func setUpWithError() throws {
        dir = try Scratch(name)
        for name in ["signer", "signer.pub", "recipient", "recipient.pub", "symmetric"] {
            try FileManager.default.copyItem(atPath: FixtureCLITests.root.appendingPathComponent("keys/\(name)").path, toPath: dir.path(name))
            chmod(dir.path(name), name.hasSuffix(".pub") ? 0o644 : 0o600)
        }
    }

    // XCTest keeps every test case object to the end of the run: drop the
    // directory now, not at deinit.
    override func tearDown() {
        dir = nil
    }

    /// The options that give a fixture `keys` (the manifest's names).
    private func options(_ keys: [String]) -> [String] {
        keys.flatMap { key -> [String] in
            switch key {
            case "trust": ["--trust", dir.path("signer.pub")]
            case "identity": ["--identity", dir.path("recipient")]
            default: ["--encrypt-key", dir.path("symmetric")]
            }
        }
    }

    func testGoodFixturesInspectAndVerify() throws {
        let keys = options(["trust", "identity", "symmetric"])
        for name in ["signed", "encrypted", "signed-encrypted", "raw-image-signed-encrypted"] {
            let path = Self.fixtures.appendingPathComponent("\(name).pgsnap").path
            let inspect = try PGSnap.run(["inspect", path, "--json"] + keys, in: dir.url)
            XCTAssertEqual(inspect.status, 0, "\(name): \(inspect.stderr)")
            let report = try JSONSerialization.jsonObject(with: inspect.stdout) as? [String: Any]
            XCTAssertEqual((report?["identity"] as? String)?.count, 64, name)
            // verify --trust refuses the unsigned one.
            let verify = try PGSnap.run(["verify", path] + keys, in: dir.url)
            XCTAssertEqual(verify.status, name == "encrypted" ? 80 : 0, "\(name): \(verify.stderr)")
        }
    }

    func testBrokenFixturesExitAsTheirErrors() throws {
        let broken = Self.fixtures.appendingPathComponent("broken")
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: broken.appendingPathComponent("manifest.json"))) as? [String: Any]
        let entries = try XCTUnwrap(manifest?["fixtures"] as? [[String: Any]])
        XCTAssertGreaterThanOrEqual(entries.count, 15)
        for entry in entries {
            let file = try XCTUnwrap(entry["file"] as? String)
            let keys = try XCTUnwrap(entry["keys"] as? [String])
            let verify = try XCTUnwrap(entry["verify"] as? [String: Any])
            let status: Int32 = switch verify["error"] as? String {
            case "CheckpointSignatureError": 80
            case "CheckpointEncryptionError": 81
            default: 65
            }
            let path = broken.appendingPathComponent(file).path
            for args in [["verify", path], ["restore", "--quiet", path, dir.path("out.img")]] {
                let r = try PGSnap.run(args + options(keys), in: dir.url)
                XCTAssertEqual(r.status, status, "\(args[0]) \(file): \(r.stderr)")
                XCTAssertEqual(r.stderrLines.count, 1, "\(file): \(r.stderr)")
                XCTAssertTrue(r.stderr.contains(file), "\(file): \(r.stderr)")
                XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("out.img")), "\(file): an image was left")
            }
        }
    }
}
