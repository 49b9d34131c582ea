import Crypto
import Foundation
import XCTest
@testable import Checkpoint
@testable import PGAlloc
import TestSupport
import Workloads

/// Signatures and encryption across a chain of incremental checkpoints:
/// every link read with the same keys, sealed parents opened where their
/// frames are referenced (eager, lazy, verify, flatten, inspect), a signed
/// child's signature covering its parent's identity, and links the keys
/// refuse found before any memory is created.
final class SecureChainTests: XCTestCase {
    /// Reading keys that open the test recipient's checkpoints, with or
    /// without the test signer trusted.
    func keys(trusting: Bool = true) -> CheckpointKeys {
        var k = TestKeys.all
        if !trusting { k.trustedSigners = [] }
        return k
    }

    func options(signer: Curve25519.Signing.PrivateKey? = TestKeys.signer, encrypted: Bool = true) -> SaveOptions {
        var o = securedOptions(signer: signer, recipients: encrypted ? [.publicKey(TestKeys.recipient.publicKey)] : [], frameSize: 16 << 10)
        o.annotations = ["vm": "secure-chain"]
        return o
    }

    /// A file of `pages` random pages, and its three-link chain: `base`,
    /// `child` (a few pages changed, one page copied from another link-1
    /// page), `grandchild` (a few more changed), each saved against its
    /// parent read with `saveKeys`. Returns the file as the grandchild saw
    /// it.
    func makeChain(
        _ dir: ScratchDirectory, pages: Int = 96, seed: UInt64, base: SaveOptions, child: SaveOptions, grandchild: SaveOptions,
        saveKeys: CheckpointKeys? = nil
    ) throws -> SavedMemory {
        let saveKeys = saveKeys ?? keys()
        var rng = SplitMix64(seed: seed)
        let file = try MemoryFile()
        defer { file.destroy() }
        let a = try file.allocate(UInt64(pages / 2) * 4096, kind: .anonymous)
        let b = try file.allocate(UInt64(pages - pages / 2) * 4096, kind: .tmpfs)
        for range in [a, b] {
            try writeThroughMapping(file, at: range.start, rng.bytes(Int(range.length)))
        }
        _ = try file.save(to: .path(dir.path("base")), options: base)
        for i in 0..<5 {
            try writeThroughMapping(file, at: a.start + UInt64(i * 3) * 4096, rng.bytes(4096))
        }
        // A page equal to one the base stores elsewhere: a reference into
        // the parent's frames that is not at the same address.
        let moved = try readBytes(file.fileDescriptor, FileRange(start: b.start + 4096, end: b.start + 8192))
        try writeThroughMapping(file, at: a.start + UInt64(pages / 2 - 1) * 4096, moved)
        let childReport = try file.save(to: .path(dir.path("child")), parent: .path(dir.path("base")), parentKeys: saveKeys, options: child)
        XCTAssertGreaterThan(childReport.referencedBytes, 0)
        for i in 0..<3 {
            try writeThroughMapping(file, at: b.start + UInt64(i * 5 + 2) * 4096, rng.bytes(4096))
        }
        let last = try file.save(
            to: .path(dir.path("grandchild")), parent: .path(dir.path("child")), parentKeys: saveKeys, options: grandchild)
        XCTAssertEqual(last.parent?.depth, 2)
        return try SavedMemory(file)
    }

    func testSignedEncryptedChainRoundTripsEagerAndLazy() throws {
        let dir = try ScratchDirectory(for: self)
        let expected = try makeChain(
            dir, seed: testSeed(0x5EC0_C4A1, "signed encrypted chain"), base: options(), child: options(), grandchild: options())
        let leaf = CheckpointLocation.path(dir.path("grandchild"))

        // Every link is encrypted: PRNT, PHSH and REFS sealed like the rest.
        for name in ["base", "child", "grandchild"] {
            let m = try CheckpointReader.readMetadata(from: .path(dir.path(name)), keys: keys())
            XCTAssertTrue(m.security.isEncrypted, name)
            for entry in m.sections where [.parent, .pageHashes, .references].contains(entry.type) {
                XCTAssertTrue(entry.isSealed, "\(name): \(entry.type) is sealed")
            }
            XCTAssertNotNil(m.sections.first { $0.type == .pageHashes }, "\(name) has page hashes")
        }
        // The child records the parent's identity, which its signature covers.
        let (baseIdentity, _) = try CheckpointReader.identity(of: .path(dir.path("base")), keys: keys())
        let child = try CheckpointReader.readMetadata(from: .path(dir.path("child")), keys: keys())
        XCTAssertEqual(child.parent?.identity, baseIdentity)
        XCTAssertEqual(child.security.signature?.isValid, true)

        var eagerOptions = restoreOptions(keys())
        eagerOptions.mode = .eager
        let eager = try MemoryFile.restore(from: leaf, options: eagerOptions)
        defer { eager.destroy() }
        try expected.check(eager, "eager restore of the signed encrypted chain")

        var lazy = LazyRestoreOptions()
        lazy.withoutUserfaultfd = .apiOnly
        var lazyOptions = restoreOptions(keys())
        lazyOptions.mode = .lazy(lazy)
        let lazyFile = try MemoryFile.restore(from: leaf, options: lazyOptions)
        defer { lazyFile.destroy() }
        try lazyFile.waitUntilLoaded()
        try expected.check(lazyFile, "lazy restore of the signed encrypted chain")

        // Verify reads every link with the keys, and each stored page
        // against its (sealed) hash.
        _ = try CheckpointReader.verify(leaf, options: restoreOptions(keys()))
        let links = try CheckpointReader.chain(of: leaf, options: restoreOptions(keys()))
        XCTAssertEqual(links.count, 3)
        XCTAssertEqual(links[2].identity, baseIdentity)

        // Flatten: never in clear; with a recipient, one encrypted file.
        var flattenRestore = restoreOptions(keys())
        flattenRestore.mode = .eager
        XCTAssertThrowsError(try MemoryFile.flatten(leaf, to: .path(dir.path("flat")), restoreOptions: flattenRestore)) {
            XCTAssert($0 is CheckpointUsageError, "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("flat")))
        _ = try MemoryFile.flatten(leaf, to: .path(dir.path("flat")), restoreOptions: flattenRestore, saveOptions: options())
        let flat = try MemoryFile.restore(from: .path(dir.path("flat")), options: eagerOptions)
        defer { flat.destroy() }
        try expected.check(flat, "the flattened chain")
        XCTAssertNil(try CheckpointReader.readMetadata(from: .path(dir.path("flat")), keys: keys()).parent)
    }

    /// Without a key, an encrypted parent stops a restore, a save against
    /// it and the chain reader: the keys are at fault (81), not the chain.
    func testEncryptedParentWithoutKeys() throws {
        let dir = try ScratchDirectory(for: self)
        // The leaf itself is not encrypted: only its parents are.
        _ = try makeChain(
            dir, pages: 32, seed: testSeed(0x5EC0_C4A2, "encrypted parent"), base: options(signer: nil), child: options(signer: nil),
            grandchild: options(signer: nil, encrypted: false), saveKeys: keys(trusting: false))
        let leaf = CheckpointLocation.path(dir.path("grandchild"))
        XCTAssertFalse(try CheckpointReader.readMetadata(from: leaf).security.isEncrypted)
        var apiOnly = LazyRestoreOptions()
        apiOnly.withoutUserfaultfd = .apiOnly
        for mode in [RestoreMode.eager, .lazy(apiOnly)] {
            var o = RestoreOptions()
            o.mode = mode
            assertThrows(CheckpointEncryptionError.self, "restore \(mode)") { try MemoryFile.restore(from: leaf, options: o) }
        }
        assertThrows(CheckpointEncryptionError.self, "verify") { try CheckpointReader.verify(leaf) }
        assertThrows(CheckpointEncryptionError.self, "chain") { try CheckpointReader.chain(of: leaf) }
        let file = try MemoryFile.restore(from: leaf, options: restoreOptions(keys(trusting: false)))
        defer { file.destroy() }
        assertThrows(CheckpointEncryptionError.self, "save against an encrypted parent") {
            try file.save(to: .path(dir.path("another")), parent: .path(dir.path("child")))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("another")))
        _ = try file.save(to: .path(dir.path("another")), parent: .path(dir.path("child")), parentKeys: keys(trusting: false))
    }

    /// A chain whose middle link is signed by another key: with the test
    /// signer trusted, the chain is refused (80) before memory is created;
    /// trusting both, it restores.
    func testLinkSignedByAnotherKeyIsRefused() throws {
        let dir = try ScratchDirectory(for: self)
        let expected = try makeChain(
            dir, pages: 32, seed: testSeed(0x5EC0_C4A3, "link signed by another key"), base: options(),
            child: options(signer: TestKeys.otherSigner), grandchild: options(), saveKeys: keys(trusting: false))
        let leaf = CheckpointLocation.path(dir.path("grandchild"))
        let (error, began) = try restoreIntoSink(leaf, keys: keys())
        XCTAssertFalse(began, "memory created before the link was refused")
        guard let signature = error as? CheckpointSignatureError, case .untrusted = signature.reason else {
            return XCTFail("expected an untrusted signer, got \(String(describing: error))")
        }
        var both = keys()
        both.trustedSigners.append(TestKeys.otherSigner.publicKey)
        let file = try MemoryFile.restore(from: leaf, options: restoreOptions(both))
        defer { file.destroy() }
        try expected.check(file, "the chain, both signers trusted")
    }

    /// A parent changed after it was signed (every CRC recomputed) is
    /// refused before any memory is created: with its signer trusted, by
    /// its signature (80); without, because its identity is no longer the
    /// one its signed child records (79).
    func testTamperedParentOfASignedChainIsRefusedBeforeMemory() throws {
        let dir = try ScratchDirectory(for: self)
        _ = try makeChain(
            dir, pages: 32, seed: testSeed(0x5EC0_C4A4, "tampered parent"), base: options(encrypted: false),
            child: options(encrypted: false), grandchild: options(encrypted: false))
        let leaf = CheckpointLocation.path(dir.path("grandchild"))
        let basePath = dir.path("base")
        let metadata = try CheckpointReader.readMetadata(from: .path(basePath), includeFrames: true)
        var bytes = try readFile(basePath)
        // A byte of the first frame's payload, and of the annotations.
        let payload = Int(metadata.index[0].offset) + metadata.frames[0].headerLength + 5
        bytes[payload] ^= 0x40
        let annotations = try XCTUnwrap(metadata.sections.first { $0.type == .annotations })
        bytes[Int(annotations.end) - 1] ^= 0x01
        CRCFields(metadata).reseal(&bytes)
        try writeFile(basePath, bytes)

        let (trusted, beganTrusted) = try restoreIntoSink(leaf, keys: keys(trusting: true))
        XCTAssertFalse(beganTrusted, "memory created before the changed parent was refused")
        XCTAssert(trusted is CheckpointSignatureError, "\(String(describing: trusted))")
        let (untrusted, beganUntrusted) = try restoreIntoSink(leaf, keys: keys(trusting: false))
        XCTAssertFalse(beganUntrusted, "memory created before the changed parent was refused")
        XCTAssertEqual((untrusted as? ChainError)?.reason, .parentChanged, "\(String(describing: untrusted))")
    }

    /// An eager restore's scan into a recording sink, the chain found first
    /// as a restore finds it: the error, and whether memory was begun.
    func restoreIntoSink(_ location: CheckpointLocation, keys: CheckpointKeys) throws -> ((any Error)?, Bool) {
        let sink = TamperingSweepTests.RecordingSink()
        let options = restoreOptions(keys)
        do {
            var scanner = try CheckpointScanner.opening(location, options: options)
            let resolution = ChainResolution(location: location, searchPaths: [], keys: keys)
            scanner.beforeFrames = resolution.beforeFrames
            _ = try scanner.scan(.decompress(sink))
            return (nil, sink.state.began)
        } catch {
            return (error, sink.state.began)
        }
    }
}
