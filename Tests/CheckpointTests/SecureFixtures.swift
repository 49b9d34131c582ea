import Crypto
import Foundation
import XCTest
@testable import Checkpoint
@testable import PGAlloc
import Workloads

// The fixtures of fixtures/v2/secure: signed and encrypted checkpoints,
// written by the writer with the test keys of fixtures/keys (and random
// bytes from a fixed sequence, so that they can be made again byte for
// byte), and broken ones, each with one thing wrong that only the keys
// can see (or that breaks a rule of encryption or signatures). Their
// golden files and manifest are as fixtures/README.md says of fixtures/v2,
// with the keys each is read with.

enum SecureFixtures {
    static let directory = fixturesDirectory + "/v2/secure"
    static let brokenDirectory = directory + "/broken"
    static let keysDirectory = fixturesDirectory + "/keys"

    /// The keys fixtures are read with, by name (the manifest's `keys`):
    /// `trust` (the test signer trusted), `identity` (the test recipient's
    /// private key), `symmetric` (the test symmetric key).
    static func keys(_ names: [String]) -> CheckpointKeys {
        var k = CheckpointKeys()
        for name in names {
            switch name {
            case "trust": k.trustedSigners.append(TestKeys.signer.publicKey)
            case "identity": k.identities.append(TestKeys.recipient)
            case "symmetric": k.symmetricKeys.append(TestKeys.symmetric)
            default: preconditionFailure("SecureFixtures: no key named \(name)")
            }
        }
        return k
    }

    /// The key files of fixtures/keys (test-only keys), by file name.
    static var keyFiles: [(String, String)] {
        [
            ("signer", CheckpointKeyFile.encode(.signingPrivate, TestKeys.signer.rawRepresentation)),
            ("signer.pub", CheckpointKeyFile.encode(.signingPublic, TestKeys.signer.publicKey.rawRepresentation)),
            ("recipient", CheckpointKeyFile.encode(.encryptionPrivate, TestKeys.recipient.rawRepresentation)),
            ("recipient.pub", CheckpointKeyFile.encode(.encryptionPublic, TestKeys.recipient.publicKey.rawRepresentation)),
            ("symmetric", CheckpointKeyFile.encode(.symmetric, TestKeys.symmetric)),
        ]
    }

    struct Good {
        var name: String
        var summary: String
        /// The keys that read it: everything it needs.
        var keys: [String]
        var make: () throws -> [UInt8]
        /// Its source, for the expected contents.
        var fixture: GoodFixture
    }

    static func options(signed: Bool, recipients: [CheckpointRecipient], seed: UInt64, frameSize: Int = 16 << 10) -> SaveOptions {
        var o = FixtureCatalogV2.options(frameSize: frameSize)
        o.signingKey = signed ? TestKeys.signer : nil
        o.recipients = recipients
        o.entropy = fixedEntropy(seed)
        return o
    }

    static func good(_ name: String, _ summary: String, keys: [String], _ source: GoodFixture.Source) -> Good {
        let fixture = GoodFixture(name: name, summary: summary, source: source)
        return Good(name: name, summary: summary, keys: keys, make: fixture.make, fixture: fixture)
    }

    static var good: [Good] { [
        good("signed", "v2's mixed workload (16 KiB frames), signed by the test signer: 72-byte index entries with the frames' digests, SIGN",
             keys: ["trust"], .memoryFile(make: FixtureCatalog.makeMixed, options: options(signed: true, recipients: [], seed: 1))),
        good("encrypted", "the mixed workload encrypted to the test X25519 recipient and the test symmetric key: ENCR with two stanzas, SEGT, ANNO, ACCT and AUTH sealed, frames sealed",
             keys: ["identity"],
             .memoryFile(make: FixtureCatalog.makeMixed, options: options(
                 signed: false, recipients: [.publicKey(TestKeys.recipient.publicKey), .symmetricKey(TestKeys.symmetric)], seed: 2))),
        good("signed-encrypted", "the mixed workload signed and encrypted to the test symmetric key",
             keys: ["trust", "symmetric"],
             .memoryFile(make: FixtureCatalog.makeMixed, options: options(signed: true, recipients: [.symmetricKey(TestKeys.symmetric)], seed: 3))),
        good("raw-image-signed-encrypted", "v2's raw image (8 KiB frames, a last partial page) signed and encrypted to the test recipient",
             keys: ["trust", "identity"],
             .rawImage(make: FixtureCatalog.makeRawImage, kind: .anonymous, options: options(
                 signed: true, recipients: [.publicKey(TestKeys.recipient.publicKey)], seed: 4, frameSize: 8 << 10))),
    ] }

    /// What a reader gives: success, or an error described by its type,
    /// reason and where it is.
    enum Outcome: Equatable, CustomStringConvertible {
        case ok
        case checkpoint(ExpectedFailure)
        case signature(String)
        case encryption(String)

        init(_ error: (any Error)?) {
            switch error {
            case nil: self = .ok
            case let e as CheckpointError: self = .checkpoint(ExpectedFailure(e))
            case let e as CheckpointSignatureError: self = .signature(String(describing: e.reason).prefix { $0 != "(" }.description)
            case let e as CheckpointEncryptionError:
                switch e {
                case .keyRequired: self = .encryption("keyRequired")
                case .noMatchingKey: self = .encryption("noMatchingKey")
                }
            case let e?: self = .checkpoint(ExpectedFailure("other error: \(e)", "-"))
            }
        }

        var json: StableJSON {
            switch self {
            case .ok: .string("ok")
            case .checkpoint(let e): .object([("error", .string("CheckpointError"))] + {
                if case .object(let members) = e.json { return members } else { return [] }
            }())
            case .signature(let reason): .object([("error", .string("CheckpointSignatureError")), ("reason", .string(reason))])
            case .encryption(let reason): .object([("error", .string("CheckpointEncryptionError")), ("reason", .string(reason))])
            }
        }

        var description: String { json.rendered().filter { $0 != "\n" } }
    }

    struct Broken {
        var name: String
        var summary: String
        var keys: [String]
        var make: () throws -> [UInt8]
        var readMetadata: Outcome
        var restore: Outcome
        var stream: Outcome
    }

    static func goodBytes(_ name: String) throws -> [UInt8] {
        try good.first { $0.name == name }!.make()
    }

    /// `name`'s bytes changed by `change` (over its parts), as anyone can.
    static func reassembled(_ name: String, keys names: [String], _ change: @escaping (inout CheckpointParts) throws -> Void) -> () throws -> [UInt8] {
        {
            var parts = try CheckpointParts(try goodBytes(name), keys: keys(names))
            try change(&parts)
            return parts.assembled()
        }
    }

    /// `name`'s bytes changed by `patch` (given its metadata), every CRC
    /// computed again if `resealing`.
    static func patched(
        _ name: String, keys names: [String], resealing: Bool = true, _ patch: @escaping (inout [UInt8], CheckpointMetadata) -> Void
    ) -> () throws -> [UInt8] {
        {
            let bytes = try goodBytes(name)
            let directory = try makeTemporaryDirectory("secure-broken")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try writeFile(directory + "/c", bytes)
            var k = keys(names)
            k.trustedSigners = []
            let metadata = try CheckpointReader.readMetadata(from: .path(directory + "/c"), includeFrames: true, keys: k)
            var out = bytes
            patch(&out, metadata)
            if resealing {
                CRCFields(metadata).reseal(&out)
            }
            return out
        }
    }

    /// `name`'s bytes with the byte at `locate` (from its metadata)
    /// changed, every CRC computed again.
    static func changed(_ name: String, keys names: [String], _ locate: @escaping (CheckpointMetadata) -> Int) -> () throws -> [UInt8] {
        patched(name, keys: names) { bytes, m in bytes[locate(m)] ^= 0x10 }
    }

    /// `name`'s bytes with a byte of frame `f`'s payload changed and the
    /// payload's CRC kept (4 more bytes changed): nothing but the frame
    /// changes.
    static func changedFrame(_ name: String, keys names: [String], frame f: Int) -> () throws -> [UInt8] {
        patched(name, keys: names, resealing: false) { bytes, m in
            let payload = Int(m.index[f].offset) + m.frames[f].headerLength
            let range = payload..<payload + Int(m.frames[f].compressedLength)
            bytes[payload + 20] ^= 0x10
            forgeCRC32C(&bytes, over: range, to: m.frames[f].payloadCRC, patch: payload + 24)
        }
    }

    static func section(_ m: CheckpointMetadata, _ type: SectionType) -> SectionEntry {
        m.sections.first { $0.type == type }!
    }

    static var broken: [Broken] {
        func E(_ reason: String, _ section: String, _ field: String? = nil) -> ExpectedFailure { ExpectedFailure(reason, section, field) }
        let tailTable = "tail section table"
        func everywhere(_ name: String, _ summary: String, keys: [String], _ o: Outcome, stream: Outcome? = nil, make: @escaping () throws -> [UInt8]) -> Broken {
            Broken(name: name, summary: summary, keys: keys, make: make, readMetadata: o, restore: o, stream: stream ?? o)
        }
        func payload(_ name: String, _ summary: String, keys: [String], _ o: Outcome, readMetadata: Outcome = .ok, make: @escaping () throws -> [UInt8]) -> Broken {
            Broken(name: name, summary: summary, keys: keys, make: make, readMetadata: readMetadata, restore: o, stream: o)
        }
        return [
            everywhere("bad-signature", "signed: a byte of SIGN's signature changed (CRCs made right): read with the signer trusted",
                       keys: ["trust"], .signature("invalid"),
                       make: changed("signed", keys: []) { Int(section($0, .signature).offset) + SignatureSection.signature.offset + 9 }),
            everywhere("changed-annotation", "signed: a byte of an annotation changed (CRCs made right): the signature no longer matches",
                       keys: ["trust"], .signature("invalid"),
                       // The third byte of the first value (created's).
                       make: changed("signed", keys: []) { Int(section($0, .annotations).offset) + 16 }),
            everywhere("signed-without-digests", "signed again by the test signer with 40-byte index entries: the signature does not cover the frames",
                       keys: ["trust"], .signature("framesNotCovered"),
                       make: reassembled("signed", keys: []) { p in
                           p.entryLength = 40
                           try p.resign(with: TestKeys.signer)
                       }),
            everywhere("sign-not-last", "signed: an ancillary tail section (XTRA) after SIGN", keys: ["trust"],
                       .checkpoint(E("invalidField", tailTable, "entry 1 type")),
                       make: reassembled("signed", keys: []) { $0.tail.append((SectionType(rawValue: 0x4152_5458), [], [1, 2, 3])) }),
            payload("frame-digest", "signed: a byte of frame 3's payload changed, its CRC kept (4 more bytes changed): only its signed digest sees it",
                    keys: ["trust"], .signature("frameDigestMismatch"),
                    make: changedFrame("signed", keys: [], frame: 3)),
            everywhere("sealed-section-tag", "encrypted: a byte of the sealed SEGT changed (CRCs made right): its AES-GCM tag does not match",
                       keys: ["identity"], .checkpoint(E("authenticationFailed", "section SEGT")),
                       make: changed("encrypted", keys: ["identity"]) { Int(section($0, .segments).offset) + 5 }),
            everywhere("sealed-identity", "encrypted: an ancillary tail section (XTRA) added: the sealed identity (AUTH) is no longer the checkpoint's",
                       keys: ["identity"], .checkpoint(E("authenticationFailed", "section AUTH")),
                       make: reassembled("encrypted", keys: ["identity"]) { p in
                           p.tail.insert((SectionType(rawValue: 0x4152_5458), [], [1, 2, 3]), at: p.tail.count - 1)
                       }),
            everywhere("auth-missing", "encrypted: no AUTH section", keys: ["identity"], .checkpoint(E("invalidField", tailTable, "sections")),
                       make: reassembled("encrypted", keys: ["identity"]) { $0.tail.removeAll { $0.type == .authentication } }),
            everywhere("accounting-not-sealed", "encrypted: ACCT in clear (its plaintext, unsealed)", keys: ["identity"],
                       .checkpoint(E("invalidField", tailTable, "entry 0 flags")),
                       make: reassembled("encrypted", keys: ["identity"]) { p in
                           p.tail[0] = (.accounting, .critical, AccountingSection.encode(storedPerKind: MemoryStats(), accounting: MemoryStats()))
                       }),
            everywhere("encryption-suite", "encrypted: ENCR's suite is 2 (CRCs made right)", keys: ["identity"],
                       .checkpoint(E("invalidField", "section ENCR", "suite")),
                       make: changed("encrypted", keys: ["identity"]) { Int(section($0, .encryption).offset) }),
            everywhere("encryption-no-stanza", "encrypted: ENCR's stanza count is 0 (CRCs made right)", keys: ["identity"],
                       .checkpoint(E("invalidField", "section ENCR", "stanzaCount")),
                       make: patched("encrypted", keys: ["identity"]) { bytes, m in putU32(&bytes, at: Int(section(m, .encryption).offset) + 4, 0) }),
            everywhere("encrypted-to-another", "encrypted: the stanza's fingerprint changed (CRCs made right): no key given opens it",
                       keys: ["identity"], .encryption("noMatchingKey"),
                       make: changed("encrypted", keys: ["identity"]) { Int(section($0, .encryption).offset) + EncryptionSection.fixedLength + 4 }),
            payload("frame-tag", "encrypted: a byte of frame 5's payload changed, its CRC kept: its AES-GCM tag does not match",
                    keys: ["identity"], .checkpoint(E("authenticationFailed", "frame 5")),
                    make: changedFrame("encrypted", keys: ["identity"], frame: 5)),
            Broken(name: "frame-foreign", summary: "signed and encrypted: frame 2 taken from another save of the same memory with the same symmetric key (same lengths), the index put back together: the frames' AES-GCM tags do not match (and the signed index no longer matches)",
                   keys: ["symmetric"],
                   make: {
                       var other = good.first { $0.name == "signed-encrypted" }!
                       if case .memoryFile(let m, var o) = other.fixture.source {
                           o.entropy = fixedEntropy(99)
                           other = SecureFixtures.good("other", "", keys: [], .memoryFile(make: m, options: o))
                       }
                       var parts = try CheckpointParts(try goodBytes("signed-encrypted"), keys: keys(["symmetric"]))
                       let foreign = try CheckpointParts(try other.make(), keys: keys(["symmetric"]))
                       parts.frames[2] = foreign.frames[2]
                       return parts.assembled()
                   },
                   readMetadata: .checkpoint(E("authenticationFailed", "section AUTH")), restore: .checkpoint(E("authenticationFailed", "section AUTH")),
                   stream: .checkpoint(E("authenticationFailed", "frame 2"))),
            everywhere("sealed-without-key", "signed and encrypted, read with the signer trusted and no key", keys: ["trust"],
                       .encryption("keyRequired"), make: { try goodBytes("signed-encrypted") }),
            Broken(name: "unsigned-trusted", summary: "encrypted, not signed, read with the signer trusted (and the key)",
                   keys: ["trust", "identity"], make: { try goodBytes("encrypted") },
                   readMetadata: .signature("unsigned"), restore: .signature("unsigned"), stream: .signature("unsigned")),
        ]
    }

    static func manifest() -> String {
        let entries: [StableJSON] = broken.map { b in
            .object([
                ("file", .string("\(b.name).pgsnap")),
                ("summary", .string(b.summary)),
                ("keys", .array(b.keys.map { .string($0) })),
                ("readMetadata", b.readMetadata.json),
                ("verify", b.restore.json),
                ("restore", b.restore.json),
                ("restoreFromPipe", b.stream.json),
            ])
        }
        return StableJSON.object([
            ("comment", .string("Each file of this directory, the keys of ../../../keys it is read with (trust: signer.pub trusted; identity: the recipient's private key; symmetric: the symmetric key), and what every reader must give: readMetadata, verify and restore (MemoryFile and RawImage) reading the file, and restore reading it from a pipe. Written by Tests/CheckpointTests/SecureFixtures.swift; see ../../../README.md.")),
            ("fixtures", .array(entries)),
        ]).rendered()
    }

    /// A good fixture's metadata as committed: `renderMetadata`, and what
    /// the readers found of its identity, signature and encryption.
    static func renderSecurity(_ m: CheckpointMetadata) -> String {
        let s = m.security
        return StableJSON.object([
            ("identity", s.identity.map { .string($0.description) } ?? .null),
            ("signer", s.signature.map { .string($0.fingerprint.description) } ?? .null),
            ("signatureValid", s.signature.map { .bool($0.isValid) } ?? .null),
            ("recipients", .array(s.recipients.map { .string($0.description) })),
        ]).rendered()
    }

    /// Every file of fixtures/v2/secure and fixtures/keys, by path relative
    /// to fixtures/, with its bytes.
    static func generate() throws -> [(String, [UInt8])] {
        var files: [(String, [UInt8])] = keyFiles.map { ("keys/\($0.0)", Array($0.1.utf8)) }
        for g in good {
            let bytes = try g.make()
            files.append(("v2/secure/\(g.name).pgsnap", bytes))
            let directory = try makeTemporaryDirectory("secure-gen")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try writeFile(directory + "/c", bytes)
            let metadata = try CheckpointReader.readMetadata(from: .path(directory + "/c"), includeFrames: true, keys: keys(g.keys))
            files.append(("v2/secure/\(g.name).metadata.json", Array((renderMetadata(metadata) + renderSecurity(metadata)).utf8)))
            let expected = try FixtureGeneratorTests.expectedContents(g.fixture, metadata: metadata)
            files.append(("v2/secure/\(g.name).contents.json", Array(expected.rendered().utf8)))
            if let image = try g.fixture.makeImage() {
                files.append(("v2/secure/\(g.name).image", image))
            }
        }
        for b in broken {
            files.append(("v2/secure/broken/\(b.name).pgsnap", try b.make()))
        }
        files.append(("v2/secure/broken/manifest.json", Array(manifest().utf8)))
        return files
    }
}

/// The fixtures of fixtures/v2/secure and fixtures/keys: written by
/// `PGSNAP_REGENERATE_FIXTURES=1` (never rewriting a committed one), read
/// back as their golden files and manifest say.
final class SecureFixtureTests: XCTestCase {
    func testRegenerateSecureFixtures() throws {
        guard let mode = ProcessInfo.processInfo.environment[FixtureGeneratorTests.variable] else {
            throw XCTSkip("set \(FixtureGeneratorTests.variable)=1 to write missing fixtures")
        }
        try FileManager.default.createDirectory(atPath: SecureFixtures.brokenDirectory, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: SecureFixtures.keysDirectory, withIntermediateDirectories: true)
        var written: [String] = []
        var differing: [String] = []
        for (name, bytes) in try SecureFixtures.generate() {
            let path = fixturesDirectory + "/" + name
            if let old = try? readFile(path) {
                if old == bytes { continue }
                if mode != "overwrite" && !name.hasSuffix("manifest.json") {
                    differing.append(name)
                    continue
                }
            }
            try writeFile(path, bytes)
            written.append(name)
        }
        print("secure fixture generator: wrote \(written.count) files: \(written.joined(separator: ", "))")
        XCTAssert(differing.isEmpty, "committed fixtures must never change, and these would: \(differing.joined(separator: ", "))")
    }

    /// The generator makes the same bytes twice over, and (informatively)
    /// the bytes committed.
    func testSecureGeneratorIsDeterministic() throws {
        let first = try SecureFixtures.generate()
        let second = try SecureFixtures.generate()
        for ((name, a), (_, b)) in zip(first, second) {
            XCTAssert(a == b, "\(name): two generations differ")
        }
        let same = first.filter { (try? readFile(fixturesDirectory + "/" + $0.0)) == $0.1 }.count
        print("secure fixture generator: \(same) of \(first.count) files identical to the committed ones")
    }

    func testKeyFilesAreTheTestKeys() throws {
        for (name, text) in SecureFixtures.keyFiles {
            XCTAssertEqual(String(decoding: try readFile(SecureFixtures.keysDirectory + "/" + name), as: UTF8.self), text, name)
        }
    }

    func testGoodFixturesReadAsTheirGoldenFilesSay() throws {
        for g in SecureFixtures.good {
            let base = SecureFixtures.directory + "/" + g.name
            let path = base + ".pgsnap"
            let keys = SecureFixtures.keys(g.keys)
            let expected = String(decoding: try readFile(base + ".metadata.json"), as: UTF8.self)
            let read = try CheckpointReader.readMetadata(from: .path(path), includeFrames: true, keys: keys)
            XCTAssertEqual(renderMetadata(read) + SecureFixtures.renderSecurity(read), expected, "\(g.name): readMetadata")
            let verified = try CheckpointReader.verify(.path(path), options: restoreOptions(keys), includeFrames: true)
            XCTAssertEqual(renderMetadata(verified) + SecureFixtures.renderSecurity(verified), expected, "\(g.name): verify")

            let contents = String(decoding: try readFile(base + ".contents.json"), as: UTF8.self)
            let image = contents.contains("\"image\"") ? "\(g.name).image" : nil
            let file = try MemoryFile.restore(from: .path(path), options: restoreOptions(keys))
            defer { file.destroy() }
            XCTAssertEqual(try describeRestored(file, dataSize: read.header.dataSize, image: image).rendered(), contents, "\(g.name): restore")
            let streamed = try withPipe(feeding: try readFile(path)) { try MemoryFile.restore(from: .descriptor($0), options: restoreOptions(keys)) }
            defer { streamed.destroy() }
            XCTAssertEqual(try describeRestored(streamed, dataSize: read.header.dataSize, image: image).rendered(), contents, "\(g.name): from a pipe")
            if let image {
                let out = try makeTemporaryDirectory("secure-image") + "/image"
                _ = try RawImage.restore(from: .path(path), toImage: out, options: restoreOptions(keys))
                XCTAssert(try readFile(out) == readFile(SecureFixtures.directory + "/" + image), "\(g.name): image")
            }
            // Without the keys that open it, an encrypted one says to whom
            // it is encrypted.
            if read.security.isEncrypted {
                XCTAssertThrowsError(try CheckpointReader.readMetadata(from: .path(path))) { error in
                    XCTAssertEqual((error as? CheckpointEncryptionError)?.recipients, read.security.recipients, g.name)
                }
            }
        }
    }

    func testBrokenFixturesFailAsTheManifestSays() throws {
        let manifest = String(decoding: try readFile(SecureFixtures.brokenDirectory + "/manifest.json"), as: UTF8.self)
        XCTAssertEqual(manifest, SecureFixtures.manifest(), "manifest.json and its catalog disagree")
        let files = try FileManager.default.contentsOfDirectory(atPath: SecureFixtures.brokenDirectory).filter { $0.hasSuffix(".pgsnap") }
        XCTAssertEqual(Set(files), Set(SecureFixtures.broken.map { "\($0.name).pgsnap" }))
        let directory = try makeTemporaryDirectory("secure-broken")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for b in SecureFixtures.broken {
            let path = SecureFixtures.brokenDirectory + "/\(b.name).pgsnap"
            let bytes = try readFile(path)
            let keys = SecureFixtures.keys(b.keys)
            func outcome(_ body: () throws -> Void) -> SecureFixtures.Outcome {
                do {
                    try body()
                    return .ok
                } catch {
                    return SecureFixtures.Outcome(error)
                }
            }
            XCTAssertEqual(outcome { _ = try CheckpointReader.readMetadata(from: .path(path), includeFrames: true, keys: keys) }, b.readMetadata, "\(b.name): readMetadata")
            XCTAssertEqual(outcome { _ = try CheckpointReader.verify(.path(path), options: restoreOptions(keys)) }, b.restore, "\(b.name): verify")
            XCTAssertEqual(outcome { try MemoryFile.restore(from: .path(path), options: restoreOptions(keys)).destroy() }, b.restore, "\(b.name): restore")
            XCTAssertEqual(
                outcome { _ = try RawImage.restore(from: .path(path), toImage: directory + "/image", options: restoreOptions(keys)) }, b.restore,
                "\(b.name): RawImage.restore")
            XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/image"), "\(b.name): an image was left")
            XCTAssertEqual(
                outcome { try withPipe(feeding: bytes) { try MemoryFile.restore(from: .descriptor($0), options: restoreOptions(keys)) }.destroy() },
                b.stream, "\(b.name): restore from a pipe")
        }
    }
}
