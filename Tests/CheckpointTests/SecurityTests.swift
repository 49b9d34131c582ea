import Crypto
import Foundation
import Synchronization
import XCTest
@testable import Checkpoint
@testable import PGAlloc

/// What readers require of signed and encrypted checkpoints, and what they
/// make of checkpoints changed by someone without the keys: frames moved,
/// dropped, duplicated or taken from another checkpoint, a truncation at a
/// frame boundary, a frame changed behind its index.
final class SecurityTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = try makeTemporaryDirectory("security")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Saves a small file (`pages` pages, 2 pages a frame) with `options`;
    /// returns the checkpoint's path.
    @discardableResult
    func save(_ options: SaveOptions, name: String, pages: Int = 8, seed: UInt64 = 7) throws -> String {
        let file = try makeSmallFile(pages: pages, seed: seed)
        defer { file.destroy() }
        var o = options
        o.frameSize = 8 << 10
        let path = directory + "/\(name).pgsnap"
        _ = try file.save(to: .path(path), options: o)
        return path
    }

    func write(_ bytes: [UInt8], name: String) throws -> String {
        let path = directory + "/\(name).pgsnap"
        try writeFile(path, bytes)
        return path
    }

    /// Every reader of `path` with `keys` fails with an error of type `E`,
    /// before creating memory where it reads a file; returns restore's.
    @discardableResult
    func assertEveryReaderRefuses<E: Error>(
        _ path: String, keys: CheckpointKeys, _ type: E.Type, file: StaticString = #filePath, line: UInt = #line
    ) throws -> E? {
        let options = restoreOptions(keys)
        let error = assertThrows(type, "restore \(path)", file: file, line: line) { try MemoryFile.restore(from: .path(path), options: options) }
        assertThrows(type, "verify \(path)", file: file, line: line) { try CheckpointReader.verify(.path(path), options: options) }
        assertThrows(type, "readMetadata \(path)", file: file, line: line) { try CheckpointReader.readMetadata(from: .path(path), keys: keys) }
        assertThrows(type, "identity \(path)", file: file, line: line) { try CheckpointReader.identity(of: .path(path), keys: keys) }
        assertThrows(type, "image \(path)", file: file, line: line) {
            try RawImage.restore(from: .path(path), toImage: directory + "/image", options: options)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/image"), "an image was left", file: file, line: line)
        var lazy = LazyRestoreOptions()
        lazy.withoutUserfaultfd = .apiOnly
        var lazyOptions = options
        lazyOptions.mode = .lazy(lazy)
        assertThrows(type, "lazy restore \(path)", file: file, line: line) { try MemoryFile.restore(from: .path(path), options: lazyOptions) }
        assertThrows(type, "restore \(path) from a pipe", file: file, line: line) {
            try withPipe(feeding: try readFile(path)) { fd in try MemoryFile.restore(from: .descriptor(fd), options: options) }
        }
        // From the file, nothing is created before the refusal.
        let sink = TamperingSweepTests.RecordingSink()
        assertThrows(type, "scan \(path)", file: file, line: line) {
            try CheckpointScanner.opening(.path(path), options: options).scan(.decompress(sink))
        }
        XCTAssertFalse(sink.state.began, "memory created before \(path) was refused", file: file, line: line)
        return error
    }

    // MARK: Keys

    func testTrustedSignersAreRequiredOfEveryCheckpointRead() throws {
        let trust = CheckpointKeys(trustedSigners: [TestKeys.signer.publicKey])
        let unsigned = try save(securedOptions(signer: nil), name: "unsigned")
        XCTAssertEqual(try assertEveryReaderRefuses(unsigned, keys: trust, CheckpointSignatureError.self)?.reason, .unsigned)

        let other = try save(securedOptions(signer: TestKeys.otherSigner), name: "other")
        XCTAssertEqual(
            try assertEveryReaderRefuses(other, keys: trust, CheckpointSignatureError.self)?.reason,
            .untrusted(KeyFingerprint(TestKeys.otherSigner.publicKey)))
        // Trusted among others.
        var both = trust
        both.trustedSigners.append(TestKeys.otherSigner.publicKey)
        XCTAssertNoThrow(try MemoryFile.restore(from: .path(other), options: restoreOptions(both)).destroy())

        // A version-1 checkpoint is never signed.
        let v1 = fixturesDirectory + "/v1/crafted.pgsnap"
        XCTAssertEqual(
            assertThrows(CheckpointSignatureError.self) { try MemoryFile.restore(from: .path(v1), options: restoreOptions(trust)) }?.reason,
            .unsigned)

        // Without trusted signers, a signature is reported, not required.
        let signed = try save(securedOptions(), name: "signed")
        let metadata = try CheckpointReader.readMetadata(from: .path(signed))
        XCTAssertEqual(metadata.security.signature?.fingerprint, KeyFingerprint(TestKeys.signer.publicKey))
        XCTAssertEqual(metadata.security.signature?.isValid, true)
        XCTAssertEqual(metadata.security.signature?.isTrusted(by: trust), true)
        XCTAssertEqual(metadata.security.signature?.isTrusted(by: CheckpointKeys(trustedSigners: [TestKeys.otherSigner.publicKey])), false)
        XCTAssertNil(try CheckpointReader.readMetadata(from: .path(unsigned)).security.signature)
    }

    func testEncryptedCheckpointsNeedAKeyThatOpensThem() throws {
        let recipients: [CheckpointRecipient] = [.publicKey(TestKeys.recipient.publicKey), .symmetricKey(TestKeys.symmetric)]
        let path = try save(securedOptions(signer: nil, recipients: recipients), name: "encrypted")
        let none = try assertEveryReaderRefuses(path, keys: CheckpointKeys(), CheckpointEncryptionError.self)
        XCTAssertEqual(none, .keyRequired(recipients: recipients.map(\.fingerprint)))
        XCTAssert(none?.description.contains(KeyFingerprint(TestKeys.recipient.publicKey).description) == true, "\(none!)")

        let wrong = CheckpointKeys(identities: [TestKeys.otherRecipient], symmetricKeys: [TestKeys.otherSymmetric])
        XCTAssertEqual(
            try assertEveryReaderRefuses(path, keys: wrong, CheckpointEncryptionError.self),
            .noMatchingKey(
                recipients: recipients.map(\.fingerprint),
                tried: [KeyFingerprint(TestKeys.otherRecipient.publicKey), KeyFingerprint(TestKeys.otherSymmetric)]))

        // Either recipient opens it on its own.
        for keys in [CheckpointKeys(identities: [TestKeys.otherRecipient, TestKeys.recipient]), CheckpointKeys(symmetricKeys: [TestKeys.symmetric])] {
            let metadata = try CheckpointReader.verify(.path(path), options: restoreOptions(keys))
            XCTAssertEqual(metadata.security.recipients, recipients.map(\.fingerprint))
            XCTAssertEqual(metadata.sections.map(\.type), [.encryption, .segments, .accounting, .pageHashes, .authentication])
            XCTAssertEqual(metadata.sections.map(\.isSealed), [false, true, true, true, true])
        }
        // A signature is required of it like of any other.
        XCTAssertEqual(
            try assertEveryReaderRefuses(
                path, keys: CheckpointKeys(trustedSigners: [TestKeys.signer.publicKey], symmetricKeys: [TestKeys.symmetric]),
                CheckpointSignatureError.self)?.reason, .unsigned)
    }

    /// The frames' and sections' plaintext never appears in an encrypted
    /// checkpoint.
    func testNothingOfThePagesOrSegmentsIsInClear() throws {
        let plain = try readFile(try save(securedOptions(signer: nil), name: "plain"))
        let sealed = try readFile(try save(securedOptions(signer: nil, recipients: [.symmetricKey(TestKeys.symmetric)]), name: "sealed"))
        let text = Array("pgsnap crafted page".utf8)
        func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
            haystack.count >= needle.count && (0...(haystack.count - needle.count)).contains { Array(haystack[$0..<$0 + needle.count]) == needle }
        }
        // zstd keeps some of the text of the pages as literals.
        XCTAssertTrue(contains(plain, text))
        XCTAssertFalse(contains(sealed, text))
        let metadata = try CheckpointReader.readMetadata(from: .path(directory + "/plain.pgsnap"))
        let segment = encodeSegments(metadata.segments[...].prefix(1))
        XCTAssertTrue(contains(plain, segment))
        XCTAssertFalse(contains(sealed, segment))
    }

    // MARK: Frames moved, dropped, swapped

    /// Frames moved, duplicated, dropped or cut off, the checkpoint put
    /// back together with every offset, count and CRC right: refused
    /// before any memory is created, by the rules of the format where they
    /// see it (the frames' order, the totals), by the sealed identity of an
    /// encrypted checkpoint or the signature of a signed one otherwise.
    func testFramesReorderedDuplicatedRemovedOrCutOffAreRefused() throws {
        let cases: [(String, SaveOptions, CheckpointKeys)] = [
            ("encrypted", securedOptions(signer: nil, recipients: [.symmetricKey(TestKeys.symmetric)]), CheckpointKeys(symmetricKeys: [TestKeys.symmetric])),
            ("signed", securedOptions(), CheckpointKeys(trustedSigners: [TestKeys.signer.publicKey])),
        ]
        for (name, options, keys) in cases {
            let original = try readFile(try save(options, name: name))
            let parts = try CheckpointParts(original, keys: keys)
            XCTAssertEqual(parts.frames.count, 4, name)
            XCTAssert(parts.assembled() == original, "\(name): taken apart and put back together, the same bytes")
            let changes: [(String, (inout CheckpointParts) -> Void)] = [
                ("frame 1 removed", { $0.frames.remove(at: 1) }),
                ("the last frame removed (cut at a frame boundary)", { $0.frames.removeLast() }),
                ("all frames removed", { $0.frames.removeAll() }),
                ("frame 2 duplicated", { $0.frames.insert($0.frames[2], at: 2) }),
                ("frames 1 and 2 swapped", { $0.frames.swapAt(1, 2) }),
            ]
            for (what, change) in changes {
                var p = parts
                change(&p)
                let path = try write(p.assembled(), name: "\(name)-changed")
                let error = try assertEveryReaderRefuses(path, keys: keys, Error.self)
                print("\(name), \(what): \(error.map { "\($0)" } ?? "-")")
            }
            // With nothing wrong that the format's rules see at open, what
            // refuses it is what needs the keys.
            let unseen: [(String, (inout CheckpointParts) -> Void)] = [
                ("the index's entries of the other length", { $0.entryLength = 112 - $0.entryLength }),
                ("the last frame removed, the stored bytes kept", {
                    $0.storedBytes = $0.frames.reduce(0) { $0 + UInt64($1.uncompressedLength) }
                    $0.frames.removeLast()
                }),
            ]
            for (what, change) in unseen {
                var p = parts
                change(&p)
                let path = try write(p.assembled(), name: "\(name)-unseen")
                let error = try assertEveryReaderRefuses(path, keys: keys, Error.self)
                if name == "encrypted" {
                    XCTAssertEqual((error as? CheckpointError)?.reason, .authenticationFailed, "\(what): \(String(describing: error))")
                } else {
                    XCTAssertEqual(
                        (error as? CheckpointSignatureError)?.reason, .invalid(KeyFingerprint(TestKeys.signer.publicKey)),
                        "\(what): \(String(describing: error))")
                }
            }
        }
    }

    /// Cut at a frame boundary, without putting the end back: refused by
    /// every reader, from a file and from a pipe.
    func testTruncationAtAFrameBoundaryIsRefused() throws {
        let keys = CheckpointKeys(trustedSigners: [TestKeys.signer.publicKey], symmetricKeys: [TestKeys.symmetric])
        let path = try save(securedOptions(recipients: [.symmetricKey(TestKeys.symmetric)]), name: "full")
        let bytes = try readFile(path)
        let metadata = try CheckpointReader.readMetadata(from: .path(path), includeFrames: true, keys: keys)
        for f in 0...metadata.index.count {
            let cut = f < metadata.index.count ? Int(metadata.index[f].offset) : Int(metadata.indexOffset)
            let truncated = try write(Array(bytes[..<cut]), name: "cut")
            try assertEveryReaderRefuses(truncated, keys: keys, CheckpointError.self)
        }
    }

    /// Two checkpoints of the same memory encrypted with the same key
    /// (frames of the same lengths): a frame of one in the other is
    /// refused, before any of it is used.
    func testAFrameSwappedBetweenTwoCheckpointsWithTheSameKeyIsRefused() throws {
        let keys = CheckpointKeys(symmetricKeys: [TestKeys.symmetric])
        let options = securedOptions(signer: nil, recipients: [.symmetricKey(TestKeys.symmetric)])
        let a = try readFile(try save(options, name: "a"))
        let b = try readFile(try save(options, name: "b"))
        XCTAssertNotEqual(a, b, "the file keys differ")
        let pa = try CheckpointParts(a, keys: keys)
        let pb = try CheckpointParts(b, keys: keys)
        XCTAssertEqual(pa.frames.map(\.payload.count), pb.frames.map(\.payload.count))

        // The frame record alone, in place: the index (and the sealed
        // identity) unchanged.
        let metadata = try CheckpointReader.readMetadata(from: .path(directory + "/a.pgsnap"), includeFrames: true, keys: keys)
        let start = Int(metadata.index[1].offset)
        let end = Int(metadata.index[2].offset)
        var swapped = a
        swapped.replaceSubrange(start..<end, with: b[start..<end])
        let path = try write(swapped, name: "swapped")
        let sink = TamperingSweepTests.RecordingSink()
        let error = assertThrows(CheckpointError.self) {
            try CheckpointScanner.opening(.path(path), options: restoreOptions(keys, threads: 1)).scan(.decompress(sink))
        }
        XCTAssertEqual(error?.reason, .authenticationFailed, "\(String(describing: error))")
        XCTAssertEqual(error?.section, .frame(1))
        XCTAssertFalse(sink.state.frames.contains(1), "the foreign frame reached the sink")
        assertThrows(CheckpointError.self) {
            try withPipe(feeding: swapped) { try MemoryFile.restore(from: .descriptor($0), options: restoreOptions(keys)) }
        }

        // And with the index put back together around it.
        var parts = pa
        parts.frames[1] = pb.frames[1]
        let rebuilt = try write(parts.assembled(), name: "rebuilt")
        XCTAssertEqual(try assertEveryReaderRefuses(rebuilt, keys: keys, CheckpointError.self)?.reason, .authenticationFailed)
    }

    /// A frame's payload changed with its CRC-32C kept (4 more bytes
    /// changed to keep it): nothing else of the file changes, and the
    /// frame is refused before it is used, by its signed digest or its AEAD
    /// tag, eagerly, from a pipe and lazily (where its pages never show a
    /// byte).
    func testAFrameChangedWithItsChecksumKeptIsRefusedBeforeUse() throws {
        let cases: [(String, SaveOptions, CheckpointKeys, (Error) -> Bool)] = [
            ("signed", securedOptions(), CheckpointKeys(trustedSigners: [TestKeys.signer.publicKey]),
             { error in
                 guard let e = error as? CheckpointSignatureError, case .frameDigestMismatch(frame: 2, _) = e.reason else { return false }
                 return true
             }),
            ("encrypted", securedOptions(signer: nil, recipients: [.publicKey(TestKeys.recipient.publicKey)]),
             CheckpointKeys(identities: [TestKeys.recipient]),
             { ($0 as? CheckpointError)?.reason == .authenticationFailed && ($0 as? CheckpointError)?.section == .frame(2) }),
        ]
        for (name, options, keys, expected) in cases {
            let path = try save(options, name: name)
            var bytes = try readFile(path)
            let metadata = try CheckpointReader.readMetadata(from: .path(path), includeFrames: true, keys: keys)
            let frame = metadata.frames[2]
            let payload = Int(metadata.index[2].offset) + frame.headerLength
            let range = payload..<payload + Int(frame.compressedLength)
            bytes[range.lowerBound + range.count / 2] ^= 0x01
            forgeCRC32C(&bytes, over: range, to: frame.payloadCRC, patch: range.lowerBound + range.count / 2 + 8)
            let changed = try write(bytes, name: "\(name)-changed")

            let sink = TamperingSweepTests.RecordingSink()
            do {
                _ = try CheckpointScanner.opening(.path(changed), options: restoreOptions(keys, threads: 1)).scan(.decompress(sink))
                XCTFail("\(name): accepted")
            } catch {
                XCTAssert(expected(error), "\(name): \(error)")
            }
            XCTAssertTrue(sink.state.began)
            XCTAssertFalse(sink.state.frames.contains(2), "\(name): the changed frame reached the sink")
            do {
                try withPipe(feeding: bytes) { try MemoryFile.restore(from: .descriptor($0), options: restoreOptions(keys)).destroy() }
                XCTFail("\(name): accepted from a pipe")
            } catch {
                XCTAssert(expected(error), "\(name), from a pipe: \(error)")
            }
            // Without keys to check it, a checksum is no defence: a
            // restore accepts the change; only verify, comparing every
            // page with its SHA-256 in the page hashes, finds it.
            if name == "signed" {
                XCTAssertNoThrow(try MemoryFile.restore(from: .path(changed)).destroy())
                XCTAssertThrowsError(try CheckpointReader.verify(.path(changed))) { XCTAssert("\($0)".contains("PHSH"), "\($0)") }
            }

            // Lazily: the frame fails when it is needed, its pages never
            // show a byte; the others load.
            var lazy = LazyRestoreOptions()
            lazy.withoutUserfaultfd = .apiOnly
            lazy.backgroundLoading = false
            let failures = Atomic<Int>(0)
            lazy.onFailure = { _ in failures.add(1, ordering: .relaxed) }
            var lazyOptions = restoreOptions(keys)
            lazyOptions.mode = .lazy(lazy)
            let file = try MemoryFile.restore(from: .path(changed), options: lazyOptions)
            defer { file.destroy() }
            let page = FileRange(start: frame.runs[0].start, end: frame.runs[0].start + 4096)
            do {
                try file.forEachMappedSlice(page) { _ in XCTFail("\(name): a page of the changed frame was lent") }
                XCTFail("\(name): the changed frame loaded")
            } catch {
                XCTAssert(expected(error), "\(name), lazily: \(error)")
            }
            XCTAssertEqual(failures.load(ordering: .relaxed), 1)
            let intact = metadata.frames[0].runs[0]
            try file.forEachMappedSlice(FileRange(start: intact.start, end: intact.start + 4096)) { slice in
                XCTAssertEqual(Array(slice.prefix(64)), Array(craftedPage(address: intact.start, seed: 7).prefix(64)), name)
            }
        }
    }

    /// A checkpoint signed without frame digests (40-byte index entries):
    /// its signature does not cover the frames, so a reader that requires
    /// one refuses it.
    func testASignatureThatDoesNotCoverTheFramesIsRefused() throws {
        let keys = CheckpointKeys(trustedSigners: [TestKeys.signer.publicKey])
        var parts = try CheckpointParts(try readFile(try save(securedOptions(), name: "signed")))
        parts.entryLength = 40
        try parts.resign(with: TestKeys.signer)
        let path = try write(parts.assembled(), name: "no-digests")
        XCTAssertNoThrow(try CheckpointReader.verify(.path(path)))
        XCTAssertEqual(try CheckpointReader.readMetadata(from: .path(path)).security.signature?.isValid, true)
        XCTAssertEqual(try assertEveryReaderRefuses(path, keys: keys, CheckpointSignatureError.self)?.reason, .framesNotCovered)
    }

    /// A signature says nothing of freshness: an older checkpoint signed by
    /// the same key is accepted; its identity (and creation time) tell it
    /// from the newer one.
    func testAnOlderCheckpointSignedByTheSameKeyIsAcceptedWithAnotherIdentity() throws {
        let keys = CheckpointKeys(trustedSigners: [TestKeys.signer.publicKey])
        var options = securedOptions()
        options.annotations = ["created": "2026-01-01T00:00:00Z"]
        let old = try save(options, name: "old", seed: 1)
        options.annotations = ["created": "2026-06-01T00:00:00Z"]
        let new = try save(options, name: "new", seed: 2)
        let a = try CheckpointReader.verify(.path(old), options: restoreOptions(keys))
        let b = try CheckpointReader.verify(.path(new), options: restoreOptions(keys))
        XCTAssertNotEqual(a.security.identity, b.security.identity)
        XCTAssertEqual(a.annotations["created"], "2026-01-01T00:00:00Z")
    }
}
