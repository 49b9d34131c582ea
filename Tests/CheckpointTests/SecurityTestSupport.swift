import Crypto
import Foundation
import XCTest
@testable import Checkpoint
@testable import PGAlloc
import Workloads

/// Keys for the tests, made from fixed bytes (test-only: their private
/// halves are in this file and in fixtures/keys/).
enum TestKeys {
    static func bytes(_ seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        return rng.bytes(32)
    }

    static let signer = try! Curve25519.Signing.PrivateKey(rawRepresentation: bytes(0x5157_4E45_5201))
    static let otherSigner = try! Curve25519.Signing.PrivateKey(rawRepresentation: bytes(0x5157_4E45_5202))
    static let recipient = try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: bytes(0x5245_4349_5001))
    static let otherRecipient = try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: bytes(0x5245_4349_5002))
    static let symmetric = SymmetricKey(data: bytes(0x5359_4D4D_4501))
    static let otherSymmetric = SymmetricKey(data: bytes(0x5359_4D4D_4502))

    /// Reading keys that open everything the tests encrypt, and trust the
    /// test signer.
    static var all: CheckpointKeys {
        CheckpointKeys(trustedSigners: [signer.publicKey], identities: [recipient], symmetricKeys: [symmetric])
    }
}

/// A fixed sequence of random bytes, for saves whose bytes must not
/// change from one run to the next.
func fixedEntropy(_ seed: UInt64) -> Entropy {
    let state = StateLock(SplitMix64(seed: seed))
    return Entropy { count in state.withLock { $0.bytes(count) } }
}

/// The options of a secured save: signed by `signer`, encrypted to
/// `recipients`.
func securedOptions(
    signer: Curve25519.Signing.PrivateKey? = TestKeys.signer, recipients: [CheckpointRecipient] = [], frameSize: Int = 16 << 10,
    entropySeed: UInt64? = nil
) -> SaveOptions {
    var options = SaveOptions()
    options.frameSize = frameSize
    options.threads = 2
    options.signingKey = signer
    options.recipients = recipients
    if let entropySeed {
        options.entropy = fixedEntropy(entropySeed)
    }
    return options
}

/// Restore options with `keys`.
func restoreOptions(_ keys: CheckpointKeys, threads: Int = 2) -> RestoreOptions {
    var options = RestoreOptions(threads: threads)
    options.keys = keys
    return options
}

/// A small MemoryFile with data in `pages` pages spread over a few
/// allocations of several kinds (crafted page contents, never zero).
func makeSmallFile(pages: Int = 12, seed: UInt64 = 7) throws -> MemoryFile {
    let file = try MemoryFile()
    var written = 0
    var kindIndex = 0
    while written < pages {
        let n = min(pages - written, 3)
        let kind = MemoryKind.allCases[kindIndex % MemoryKind.allCases.count]
        kindIndex += 1
        let range = try file.allocate(UInt64(n + 1) * 4096, kind: kind, direction: .bottomUp)
        for p in 0..<n {
            let address = range.start + UInt64(p) * 4096
            try writeThroughMapping(file, at: address, craftedPage(address: address, seed: seed))
        }
        written += n
    }
    return file
}

/// Asserts that `body` throws an error of type `E` and returns it.
@discardableResult
func assertThrows<E: Error, R>(
    _ errorType: E.Type, _ message: String = "", file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> R
) -> E? {
    do {
        _ = try body()
        XCTFail("expected \(E.self), got success. \(message)", file: file, line: line)
    } catch let e as E {
        return e
    } catch {
        XCTFail("expected \(E.self), got \(type(of: error)): \(error). \(message)", file: file, line: line)
    }
    return nil
}
