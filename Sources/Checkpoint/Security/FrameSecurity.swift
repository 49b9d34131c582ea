import Crypto
import FoundationEssentials
import PGAlloc

/// A frame's digest, which the index of a signed checkpoint carries (in
/// 72-byte entries): the SHA-256 of the frame's header as stored (tag to
/// headerCRC) followed by the SHA-256 of its payload as stored (encrypted,
/// if the checkpoint is). The payload's own digest lets workers hash the
/// bulk of a frame in parallel, before its header (and sequence number) is
/// known.
enum FrameDigest {
    static func payloadDigest(_ payload: UnsafeRawBufferPointer) -> [UInt8] {
        Array(SHA256.hash(data: payload))
    }

    static func digest(header: [UInt8], payloadDigest: [UInt8]) -> [UInt8] {
        var hash = SHA256()
        hash.update(data: header)
        hash.update(data: payloadDigest)
        return Array(hash.finalize())
    }
}

/// What a save's workers do to a frame's compressed payload: seal it (an
/// encrypted checkpoint), and hash it (a signed one).
struct FrameSealer: Sendable {
    /// The checkpoint's header, as written.
    let header: [UInt8]
    /// The frames key; nil if the checkpoint is not encrypted.
    let framesKey: SymmetricKey?
    /// Whether payloads are hashed for the index's digests.
    let digests: Bool

    /// Bytes a sealed payload of at most `plain` bytes adds.
    func overhead(plain: Int) -> Int {
        framesKey == nil ? 0 : Int(SectionRule.sealedLength(plain: UInt64(plain))) - plain
    }

    /// Seals the `plainLength` bytes at the start of `payload` (the
    /// compressed pages of `runs`) in place; returns the bytes stored.
    func seal(_ payload: UnsafeMutableRawBufferPointer, plainLength: Int, runs: [FileRange], uncompressedLength: Int) throws -> Int {
        guard let framesKey else { return plainLength }
        let cipher = PayloadCipher.frame(
            runs: runs, uncompressedLength: UInt32(uncompressedLength), plainLength: UInt64(plainLength), header: header,
            framesKey: framesKey)
        return try cipher.seal(inPlace: payload)
    }

    /// The payload's digest, for a signed checkpoint.
    func payloadDigest(_ stored: UnsafeRawBufferPointer) -> [UInt8]? {
        digests ? FrameDigest.payloadDigest(stored) : nil
    }
}

/// What a reader does to a frame's payload before decompressing it: check
/// it against the digest the signed index gives it (when a signature is
/// required), and open it (an encrypted checkpoint). Used from worker and
/// loader threads; immutable but for the digests a stream records.
final class FrameOpener: Sendable {
    /// The checkpoint's header, as read.
    let header: [UInt8]
    let framesKey: SymmetricKey?
    let digests: FrameDigests?

    /// Where the digests frames are checked against come from.
    enum FrameDigests: Sendable {
        /// The signed index's, read first (from a file).
        case expected([[UInt8]])
        /// Not known yet (a stream: the index comes last): recorded, and
        /// compared with the index once it is read and authenticated.
        case recorded(DigestRecord)
    }

    init(header: [UInt8], framesKey: SymmetricKey?, digests: FrameDigests?) {
        self.header = header
        self.framesKey = framesKey
        self.digests = digests
    }

    /// Bytes the sealing of an encrypted checkpoint may add to the largest
    /// compressed frame of `frameLimit` bytes.
    static func sealOverhead(frameLimit: UInt32) -> Int {
        let plain = CheckpointFormat.maxCompressedLength(frameLimit: frameLimit)
        return Int(SectionRule.sealedLength(plain: plain) - plain)
    }

    /// Bytes this checkpoint's sealing may add to a frame's payload.
    func sealOverhead(frameLimit: UInt32) -> Int {
        framesKey == nil ? 0 : Self.sealOverhead(frameLimit: frameLimit)
    }

    /// Checks the payload of `frame` (its stored bytes, at `payloadOffset`)
    /// and opens it in place; returns the compressed bytes to decompress.
    func open(_ frame: FrameHeader, payload: UnsafeMutableRawBufferPointer, payloadOffset: UInt64) throws -> UnsafeRawBufferPointer {
        let section = CheckpointSection.frame(frame.sequence)
        switch digests {
        case .expected(let digests):
            let digest = FrameDigest.digest(header: frame.bytes, payloadDigest: FrameDigest.payloadDigest(UnsafeRawBufferPointer(payload)))
            if frame.sequence >= UInt64(digests.count) || digests[Int(frame.sequence)] != digest {
                throw CheckpointSignatureError(.frameDigestMismatch(frame: frame.sequence, offset: payloadOffset - UInt64(frame.headerLength)))
            }
        case .recorded(let record):
            record.record(
                frame.sequence, FrameDigest.digest(header: frame.bytes, payloadDigest: FrameDigest.payloadDigest(UnsafeRawBufferPointer(payload))))
        case nil:
            break
        }
        guard let framesKey else { return UnsafeRawBufferPointer(payload) }
        guard let plain = SealedChunks.plainLength(sealed: UInt64(payload.count)) else {
            throw CheckpointError.field(
                section, payloadOffset - UInt64(frame.headerLength) + UInt64(FrameLayout.compressedLength.offset), "compressedLength",
                expected: "the length of a sealed payload (a multiple of 65552 plus 16 to 65551)", found: payload.count)
        }
        let cipher = PayloadCipher.frame(
            runs: frame.runs, uncompressedLength: frame.uncompressedLength, plainLength: plain, header: header, framesKey: framesKey)
        if let chunk = cipher.open(inPlace: payload).failed {
            throw CheckpointError(
                .authenticationFailed, section, offset: payloadOffset + chunk * SealedChunks.sealedChunkLength,
                "chunk \(chunk) of the payload does not match its AES-GCM tag: the frame was changed, or belongs to another checkpoint")
        }
        return UnsafeRawBufferPointer(rebasing: payload[..<Int(plain)])
    }
}

/// The digests of the frames a stream read, by sequence number, recorded
/// by the workers.
final class DigestRecord: Sendable {
    private let digests = StateLock<[UInt64: [UInt8]]>([:])

    func record(_ sequence: UInt64, _ digest: [UInt8]) {
        digests.withLock { $0[sequence] = digest }
    }

    /// Checks the recorded digests against the index's `entries`: every
    /// frame's if `complete` (all frames were read), else those recorded.
    func check(against entries: [IndexEntry], complete: Bool) throws {
        let recorded = digests.withLock { $0 }
        for (i, entry) in entries.enumerated() {
            guard let digest = recorded[UInt64(i)] else {
                if complete {
                    throw CheckpointSignatureError(.frameDigestMismatch(frame: UInt64(i), offset: entry.offset))
                }
                continue
            }
            if digest != entry.digest {
                throw CheckpointSignatureError(.frameDigestMismatch(frame: UInt64(i), offset: entry.offset))
            }
        }
    }
}
