import Foundation
import XCTest
@testable import Checkpoint
@testable import PGAlloc
import Workloads

/// The tampering sweep of issue 13: a small signed checkpoint (three
/// frames, about 6 KiB), every byte changed in turn and every CRC-32C
/// computed again, as anyone can; restored from the file with the signer
/// trusted, each one must be rejected, and:
///
/// - a change outside the frames is rejected before any memory is created
///   (the sink is never begun);
/// - a change in a frame's header or payload is rejected before any byte
///   of that frame is used (the sink never receives it);
/// - a change in a frame's padding is rejected (the frame itself is not
///   changed).
///
/// The same over a signed and encrypted checkpoint (trusted signer and the
/// key), and over one that is only encrypted (the key, no signature
/// required: `AUTH` and the frames' AEAD catch what the signature would).
///
/// Every byte is changed once, by a value drawn from a seeded generator
/// (printed; PGALLOC_TEST_SEED replays it). PGSNAP_QUICK_SWEEP samples:
/// every 7th byte and every part's first and last bytes.
final class TamperingSweepTests: XCTestCase {
    /// What the sink of a scan saw.
    final class RecordingSink: FrameSink, @unchecked Sendable {
        private let lock = NSLock()
        private var began = false
        private var frames: Set<UInt64> = []

        func begin(header: CheckpointHeader, segments: [SegmentRecord]) throws {
            lock.withLock { began = true }
        }

        func consume(_ frame: FrameHeader, data: UnsafeRawBufferPointer) throws {
            _ = lock.withLock { frames.insert(frame.sequence) }
        }

        var state: (began: Bool, frames: Set<UInt64>) { lock.withLock { (began, frames) } }
    }

    /// Where a byte of the checkpoint lies.
    enum Place: Equatable {
        case metadata
        case frame(UInt64)
        case padding(UInt64)
    }

    static let quick = ProcessInfo.processInfo.environment["PGSNAP_QUICK_SWEEP"] != nil

    var memfd: Int32 = -1
    var watchdog: SweepTests.Watchdog!

    override func setUpWithError() throws {
        memfd = try OwnedFileDescriptor.memfd(name: "tamper").release()
        watchdog = SweepTests.Watchdog(deadline: SweepTests.caseDeadline)
    }

    override func tearDown() {
        watchdog.stop()
        close(memfd)
    }

    /// A small checkpoint saved with `options`: three frames of two pages.
    func base(_ options: SaveOptions) throws -> [UInt8] {
        let file = try makeSmallFile(pages: 6)
        defer { file.destroy() }
        let directory = try makeTemporaryDirectory("tamper")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var o = options
        o.frameSize = 8 << 10
        _ = try file.save(to: .path(directory + "/c"), options: o)
        return try readFile(directory + "/c")
    }

    /// The place of every byte of `bytes`.
    func places(_ bytes: [UInt8], _ m: CheckpointMetadata) -> [Place] {
        var out = [Place](repeating: .metadata, count: bytes.count)
        for (f, frame) in m.frames.enumerated() {
            let start = Int(m.index[f].offset)
            let end = start + frame.headerLength + Int(frame.compressedLength)
            let next = f + 1 < m.index.count ? Int(m.index[f + 1].offset) : Int(m.indexOffset)
            for i in start..<end { out[i] = .frame(UInt64(f)) }
            for i in end..<next { out[i] = .padding(UInt64(f)) }
        }
        return out
    }

    /// Runs a restore of `bytes` from a file into a recording sink.
    func restore(_ bytes: [UInt8], keys: CheckpointKeys, name: String) throws -> ((any Error)?, RecordingSink) {
        guard ftruncate(memfd, 0) == 0 else { throw HostError.last("ftruncate") }
        let written = bytes.withUnsafeBytes { pwrite(memfd, $0.baseAddress, $0.count, 0) }
        guard written == bytes.count else { throw HostError.last("pwrite") }
        lseek(memfd, 0, SEEK_SET)
        let sink = RecordingSink()
        watchdog.begin(name)
        defer { watchdog.end() }
        do {
            let scanner = try CheckpointScanner.opening(.descriptor(memfd), options: restoreOptions(keys))
            _ = try scanner.scan(.decompress(sink))
            return (nil, sink)
        } catch {
            return (error, sink)
        }
    }

    func sweep(_ options: SaveOptions, keys: CheckpointKeys, title: String) throws {
        let original = try base(options)
        let directory = try makeTemporaryDirectory("tamper")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try writeFile(directory + "/c", original)
        var k = keys
        k.trustedSigners = []
        let metadata = try CheckpointReader.readMetadata(from: .path(directory + "/c"), includeFrames: true, keys: k)
        XCTAssertEqual(metadata.frames.count, 3, "\(title): the base's frames")
        let (clean, cleanSink) = try restore(original, keys: keys, name: "\(title): the base")
        XCTAssertNil(clean, "\(title): the base is valid")
        XCTAssertEqual(cleanSink.state.frames.count, 3)

        let crcs = CRCFields(metadata)
        var resealed = original
        crcs.reseal(&resealed)
        XCTAssert(resealed == original, "\(title): CRCFields finds every CRC where it is")
        let crcPositions = crcs.positions
        let where_ = places(original, metadata)
        let seed = testSeed(0x7A3F_5EED, "tampering sweep (\(title))")
        var rng = SplitMix64(seed: seed)
        var cases = 0
        var accepted: [String] = []
        var undone = 0
        var byError: [String: Int] = [:]
        for offset in 0..<original.count {
            let change = UInt8(truncatingIfNeeded: rng.next() % 255 + 1)
            if Self.quick && offset % 7 != 0 && where_[max(0, offset - 1)] == where_[offset]
                && where_[min(original.count - 1, offset + 1)] == where_[offset]
            {
                continue
            }
            if crcPositions.contains(offset) {
                undone += 1
                continue
            }
            var bytes = original
            bytes[offset] ^= change
            crcs.reseal(&bytes)
            let name = "\(title): byte \(offset) ^ \(hex(UInt64(change))) (\(where_[offset]))"
            let (error, sink) = try restore(bytes, keys: keys, name: name)
            cases += 1
            guard let error else {
                accepted.append(name)
                continue
            }
            switch error {
            case let e as CheckpointError:
                byError["\(ExpectedFailure(e).reason) (65)", default: 0] += 1
            case let e as CheckpointSignatureError:
                byError["signature: \(String(describing: e.reason).prefix { $0 != "(" }) (80)", default: 0] += 1
            case is CheckpointEncryptionError:
                byError["no key opens it (81)", default: 0] += 1
            default:
                XCTFail("\(name): \(type(of: error)) \(error)")
            }
            let (began, frames) = sink.state
            switch where_[offset] {
            case .metadata:
                XCTAssertFalse(began, "\(name): memory was created before the change was found (\(error))")
            case .frame(let f):
                XCTAssertFalse(frames.contains(f), "\(name): the changed frame reached the sink (\(error))")
            case .padding:
                break
            }
        }
        let errors = byError.sorted { $0.value > $1.value }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
        print("tampering sweep \(title)\(Self.quick ? " [sampled]" : ""): \(original.count) bytes, \(undone) CRC bytes (undone by resealing), "
            + "\(cases) changes, \(cases - accepted.count) rejected: \(errors)")
        XCTAssertEqual(accepted, [], "\(title): changes accepted")
    }

    func testEveryByteChangeOfASignedCheckpointIsRejected() throws {
        try sweep(securedOptions(), keys: CheckpointKeys(trustedSigners: [TestKeys.signer.publicKey]), title: "signed")
    }

    func testEveryByteChangeOfASignedEncryptedCheckpointIsRejected() throws {
        try sweep(
            securedOptions(recipients: [.symmetricKey(TestKeys.symmetric)]),
            keys: CheckpointKeys(trustedSigners: [TestKeys.signer.publicKey], symmetricKeys: [TestKeys.symmetric]),
            title: "signed and encrypted")
    }

    func testEveryByteChangeOfAnEncryptedCheckpointIsRejected() throws {
        try sweep(
            securedOptions(signer: nil, recipients: [.publicKey(TestKeys.recipient.publicKey)]),
            keys: CheckpointKeys(identities: [TestKeys.recipient]), title: "encrypted")
    }
}
