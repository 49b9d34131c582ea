import Crypto
import Foundation
import XCTest
@testable import Checkpoint
@testable import PGAlloc

/// Signed and encrypted checkpoints, saved and read back through every
/// reader: what they restore to, their identity, and what each reader
/// requires of the keys it is given.
final class SecurityRoundTripTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = try makeTemporaryDirectory("security")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func save(_ options: SaveOptions, name: String = "ck") throws -> (MemoryFile, SaveReport, String) {
        let file = try makeSmallFile()
        let path = directory + "/\(name).pgsnap"
        let report = try file.save(to: .path(path), options: options)
        return (file, report, path)
    }

    /// What every kind of secured checkpoint restores to, from a file and
    /// from a pipe, and the identity every reader computes.
    func testEverySecuredCheckpointRestoresToItsSource() throws {
        let cases: [(String, SaveOptions)] = [
            ("plain", securedOptions(signer: nil)),
            ("signed", securedOptions()),
            ("x25519", securedOptions(signer: nil, recipients: [.publicKey(TestKeys.recipient.publicKey)])),
            ("symmetric", securedOptions(signer: nil, recipients: [.symmetricKey(TestKeys.symmetric)])),
            ("signed-encrypted", securedOptions(recipients: [.publicKey(TestKeys.otherRecipient.publicKey), .symmetricKey(TestKeys.symmetric)])),
        ]
        for (name, options) in cases {
            let (source, report, path) = try save(options, name: name)
            defer { source.destroy() }
            var keys = TestKeys.all
            if options.signingKey == nil {
                keys.trustedSigners = []
            }
            let (restored, metadata) = try MemoryFile.restoreWithMetadata(from: .path(path), options: restoreOptions(keys))
            defer { restored.destroy() }
            XCTAssertTrue(try sameContents(source.fileDescriptor, restored.fileDescriptor, in: FileRange(start: 0, end: source.totalSize)), name)
            XCTAssertEqual(savedShape(restored.usageSnapshot), savedShape(source.usageSnapshot), name)
            XCTAssertEqual(metadata.security.identity, report.identity, "\(name): the identity the writer computed")
            XCTAssertEqual(metadata.security.isEncrypted, !options.recipients.isEmpty, name)
            XCTAssertEqual(metadata.security.signature?.isValid, options.signingKey == nil ? nil : true, name)
            XCTAssertEqual(metadata.security.recipients, options.recipients.map(\.fingerprint), name)

            guard case .random(let input) = try OpenedInput.open(.path(path)) else { return XCTFail("\(path) is not a file") }
            let reread = try CheckpointReader.identity(of: input, metadata: metadata)
            XCTAssertEqual(reread, report.identity, "\(name): the identity read back from the file")

            let streamed = try withPipe(feeding: try readFile(path)) { fd in
                try MemoryFile.restore(from: .descriptor(fd), options: restoreOptions(keys))
            }
            defer { streamed.destroy() }
            XCTAssertTrue(try sameContents(source.fileDescriptor, streamed.fileDescriptor, in: FileRange(start: 0, end: source.totalSize)), name)

            // Lazily, through the API (loading only what is waited for)
            // and then in the background.
            var lazy = LazyRestoreOptions()
            lazy.withoutUserfaultfd = .apiOnly
            lazy.backgroundLoading = false
            var lazyOptions = restoreOptions(keys)
            lazyOptions.mode = .lazy(lazy)
            let lazily = try MemoryFile.restore(from: .path(path), options: lazyOptions)
            defer { lazily.destroy() }
            for (range, info) in source.usageSnapshot.segments where info.refs > 0 {
                try lazily.forEachMappedSlice(range) { _ in }
            }
            try lazily.waitUntilLoaded()
            XCTAssertTrue(try sameContents(source.fileDescriptor, lazily.fileDescriptor, in: FileRange(start: 0, end: source.totalSize)), "\(name), lazily")
            XCTAssertEqual(lazily.accounting.snapshot(), restored.accounting.snapshot(), "\(name), lazily")

            _ = try CheckpointReader.verify(.path(path), options: restoreOptions(keys, threads: 1))
            let read = try CheckpointReader.readMetadata(from: .path(path), includeFrames: true, keys: CheckpointKeys(identities: [TestKeys.recipient], symmetricKeys: [TestKeys.symmetric]))
            XCTAssertEqual(read.security.identity, report.identity, name)
            XCTAssertEqual(read.segments, metadata.segments, name)
        }
    }
}
