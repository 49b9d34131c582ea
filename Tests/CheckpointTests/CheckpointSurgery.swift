import Crypto
import Foundation
@testable import Checkpoint
@testable import PGAlloc

// What anyone can do to a checkpoint without its keys: change bytes and
// make every CRC-32C right again (`CRCFields`), or take it apart and put
// it back together with frames moved, dropped or taken from elsewhere,
// every offset, count and checksum made right (`CheckpointParts`). What
// only a key holder can do (seal, sign) is left to the test.

/// Every CRC-32C of a checkpoint (and every copy of one), where it is and
/// what it covers, found from the checkpoint's own metadata.
struct CRCFields {
    struct Field {
        /// Where the CRC is stored.
        var at: Int
        /// The bytes it covers.
        var covers: Range<Int>
        /// Where copies of it are stored (the index repeats each frame's
        /// CRCs, the trailer the header's).
        var copies: [Int] = []
    }

    /// In the order they must be computed: a CRC before any that covers
    /// it.
    var fields: [Field] = []

    init(_ m: CheckpointMetadata) {
        let entryLength = m.index.first.map { $0.digest.isEmpty ? 40 : 72 } ?? 40
        let entries = Int(m.indexOffset) + IndexLayout.fixedLength
        for (f, frame) in m.frames.enumerated() {
            let offset = Int(m.index[f].offset)
            let payload = offset + frame.headerLength
            let entry = entries + f * entryLength
            fields.append(Field(
                at: offset + FrameLayout.payloadCRC.offset, covers: payload..<payload + Int(frame.compressedLength),
                copies: [entry + IndexEntryLayout.payloadCRC.offset]))
            fields.append(Field(
                at: payload - 4, covers: offset..<payload - 4, copies: [entry + IndexEntryLayout.headerCRC.offset]))
        }
        for placement in [SectionPlacement.head, .tail] {
            let sections = m.sections.filter { $0.placement == placement }
            guard !sections.isEmpty else { continue }
            let table = placement == .head ? HeaderLayout.recordLength : Int(m.indexOffset + m.indexLength)
            for (i, s) in sections.enumerated() {
                fields.append(Field(
                    at: table + SectionTableLayout.fixedLength + i * SectionEntryLayout.recordLength + SectionEntryLayout.crc.offset,
                    covers: Int(s.offset)..<Int(s.end)))
            }
            let end = table + SectionTableLayout.fixedLength + sections.count * SectionEntryLayout.recordLength
            fields.append(Field(at: end, covers: table..<end))
        }
        let indexEnd = Int(m.indexOffset + m.indexLength) - ClosingLayout.recordLength
        fields.append(Field(at: indexEnd, covers: Int(m.indexOffset)..<indexEnd))
        let trailer = Int(m.checkpointLength) - TrailerLayout.recordLength
        fields.append(Field(at: HeaderLayout.headerCRC.offset, covers: 0..<HeaderLayout.headerCRC.offset, copies: [trailer + TrailerLayout.headerCRC.offset]))
        fields.append(Field(at: trailer + TrailerLayout.trailerCRC.offset, covers: trailer..<trailer + TrailerLayout.trailerCRC.offset))
    }

    /// Computes every CRC again over `bytes`.
    func reseal(_ bytes: inout [UInt8]) {
        for f in fields {
            let crc = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[f.covers])) }
            for at in [f.at] + f.copies {
                putU32(&bytes, at: at, crc)
            }
        }
    }

    /// The bytes that hold a CRC or a copy: a change there is undone by
    /// `reseal`.
    var positions: Set<Int> {
        Set(fields.flatMap { ([$0.at] + $0.copies).flatMap { $0..<$0 + 4 } })
    }
}

/// A version-2 checkpoint taken apart, to be put back together.
struct CheckpointParts {
    /// The header and the head region (up to the first frame), as they
    /// were.
    var header: [UInt8]
    var head: [UInt8]
    /// Each frame: its header (its sequence is set again when assembled),
    /// its payload, and its runs.
    var frames: [(header: [UInt8], payload: [UInt8], runs: [FileRange], uncompressedLength: UInt32)]
    /// 40, or 72 with digests (computed again when assembled, as anyone
    /// can: SHA-256 needs no key).
    var entryLength: Int
    var tail: [(type: SectionType, flags: SectionFlags, payload: [UInt8])]
    /// The index's and trailer's storedBytes, if not the frames' sum (to
    /// keep the total of frames that were dropped).
    var storedBytes: UInt64?

    /// Takes `bytes` apart; `keys` open it, if it is encrypted.
    init(_ bytes: [UInt8], keys: CheckpointKeys = CheckpointKeys()) throws {
        let directory = try makeTemporaryDirectory("parts")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try writeFile(directory + "/c", bytes)
        var k = keys
        k.trustedSigners = []
        let m = try CheckpointReader.readMetadata(from: .path(directory + "/c"), includeFrames: true, keys: k)
        header = Array(bytes[0..<64])
        head = Array(bytes[64..<Int(m.framesOffset)])
        frames = zip(m.frames, m.index).map { frame, entry in
            let at = Int(entry.offset)
            return (
                Array(bytes[at..<at + frame.headerLength]),
                Array(bytes[at + frame.headerLength..<at + frame.headerLength + Int(frame.compressedLength)]),
                frame.runs, frame.uncompressedLength)
        }
        entryLength = m.index.first.map { $0.digest.isEmpty ? 40 : 72 } ?? 40
        tail = m.sections.filter { $0.placement == .tail }.map { ($0.type, $0.flags, Array(bytes[Int($0.offset)..<Int($0.end)])) }
    }

    /// The checkpoint put back together: frames numbered in order, index,
    /// tail table and trailer made to match, every CRC computed.
    func assembled() -> [UInt8] {
        var out = header + head
        var entries: [IndexEntry] = []
        var stored: UInt64 = 0
        for (i, f) in frames.enumerated() {
            var h = f.header
            putU64(&h, at: FrameLayout.sequence.offset, UInt64(i))
            resealCRC(&h, over: 0..<h.count - 4, at: h.count - 4)
            let offset = UInt64(out.count)
            out += h + f.payload
            out += [UInt8](repeating: 0, count: CheckpointFormat.padding(after: UInt64(h.count + f.payload.count)))
            let digest = entryLength == 72
                ? f.payload.withUnsafeBytes { FrameDigest.digest(header: h, payloadDigest: FrameDigest.payloadDigest($0)) } : []
            entries.append(IndexEntry(
                offset: offset, uncompressedLength: f.uncompressedLength, compressedLength: UInt32(f.payload.count),
                firstAddress: f.runs.first!.start, endAddress: f.runs.last!.end, headerCRC: u32(h, at: h.count - 4),
                payloadCRC: CRC32C.checksum(f.payload), digest: digest))
            stored += UInt64(f.uncompressedLength)
        }
        stored = storedBytes ?? stored
        let indexOffset = UInt64(out.count)
        let index = encodeIndex(frameCount: UInt64(frames.count), storedBytes: stored, entries: entries, entryLength: entryLength)
        out += index
        let table = encodeSectionTable(
            tail.map { ($0.type, $0.flags, UInt64($0.payload.count), CRC32C.checksum($0.payload)) }, tableOffset: UInt64(out.count),
            placement: .tail)
        out += table.bytes
        for s in tail {
            out += s.payload
            out += [UInt8](repeating: 0, count: CheckpointFormat.padding(after: UInt64(out.count)))
        }
        let trailer = CheckpointTrailer(
            version: 2, indexOffset: indexOffset, indexLength: UInt64(index.count), checkpointLength: UInt64(out.count + 64),
            frameCount: UInt64(frames.count), storedBytes: stored, headerCRC: u32(header, at: HeaderLayout.headerCRC.offset))
        return out + trailer.encoded()
    }

    /// The identity of the checkpoint as assembled.
    func identity() -> CheckpointIdentity {
        let bytes = assembled()
        var hasher = ManifestHasher()
        hasher.part(header)
        hasher.part(head)
        let indexOffset = header.count + head.count + frames.reduce(0) { $0 + Int(CheckpointFormat.padded(UInt64($1.header.count + $1.payload.count))) }
        let indexLength = IndexShape(version: 2, entryLength: entryLength).length(frameCount: UInt64(frames.count))!
        hasher.part(Array(bytes[indexOffset..<indexOffset + Int(indexLength)]))
        for s in tail where !s.type.isOutsideManifest {
            hasher.beginTailSection(type: s.type, flags: s.flags, length: UInt64(s.payload.count))
            hasher.add(s.payload)
        }
        return hasher.finish()
    }

    /// Signs the checkpoint as it now is with `key` (what only the key's
    /// holder can do).
    mutating func resign(with key: Curve25519.Signing.PrivateKey) throws {
        let section = try CheckpointSigning.sign(identity(), with: key).encode()
        tail.removeAll { $0.type == .signature }
        tail.append((.signature, [], section))
    }
}

/// Changes the 4 bytes at `patch` so that the CRC-32C of `bytes[range]`
/// is `crc` again: what makes a checksum no defence against a change made
/// on purpose. A CRC is affine in the bits of a message of fixed length,
/// so the patch solves 32 linear equations over GF(2).
func forgeCRC32C(_ bytes: inout [UInt8], over range: Range<Int>, to crc: UInt32, patch: Int) {
    precondition(range.contains(patch) && range.contains(patch + 3))
    func checksum(_ b: [UInt8]) -> UInt32 { b.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[range])) } }
    let current = checksum(bytes)
    // Column j: how flipping bit j of the patch changes the CRC.
    let columns: [UInt32] = (0..<32).map { j in
        var b = bytes
        b[patch + j / 8] ^= 1 << UInt8(j % 8)
        return checksum(b) ^ current
    }
    // Rows: for each bit i of the CRC, which patch bits flip it, and the
    // wanted change of that bit (in bit 32).
    var rows: [UInt64] = (0..<32).map { i in
        var row: UInt64 = UInt64((current ^ crc) >> UInt32(i) & 1) << 32
        for j in 0..<32 where columns[j] >> UInt32(i) & 1 == 1 {
            row |= 1 << UInt64(j)
        }
        return row
    }
    for j in 0..<32 {
        let pivot = (j..<32).first { rows[$0] >> UInt64(j) & 1 == 1 }!
        rows.swapAt(j, pivot)
        for i in 0..<32 where i != j && rows[i] >> UInt64(j) & 1 == 1 {
            rows[i] ^= rows[j]
        }
    }
    for j in 0..<32 where rows[j] >> 32 & 1 == 1 {
        bytes[patch + j / 8] ^= 1 << UInt8(j % 8)
    }
    precondition(checksum(bytes) == crc, "forgeCRC32C: no solution")
}
