import Crypto
import FoundationEssentials
import PGAlloc

/// Seals and opens a payload (a section's or a frame's) as the sealed
/// layout of `SealedChunks` says: AES-256-GCM chunk by chunk, each with a
/// nonce of its own and the same associated data, which binds the chunks
/// to this checkpoint's header, to what the payload is (a section's type,
/// a frame's address and runs) and to the payload's plaintext length, so
/// that no chunk can be moved, dropped or added.
///
/// - A section of type T: the sections key; nonce T (4 bytes as stored)
///   and the chunk number (u64); associated data: the checkpoint's header
///   (64 bytes), T, the section's flags (u32), the plaintext length (u64).
/// - A frame: the frames key; nonce its first address in pages (u64; no
///   two frames of a checkpoint start at the same page) and the chunk
///   number (u32); associated data: the header, the first address (u64),
///   the plaintext length (u64), the uncompressed length and the run count
///   (u32 each), and the run table.
struct PayloadCipher: Sendable {
    private let key: SymmetricKey
    /// The first 4 or 8 bytes of every chunk's nonce.
    private let noncePrefix: [UInt8]
    private let associatedData: [UInt8]
    /// Bytes of plaintext.
    let plainLength: UInt64

    private init(key: SymmetricKey, noncePrefix: [UInt8], associatedData: [UInt8], plainLength: UInt64) {
        self.key = key
        self.noncePrefix = noncePrefix
        self.associatedData = associatedData
        self.plainLength = plainLength
    }

    /// The cipher of a section's payload of `plainLength` bytes.
    static func section(
        _ type: SectionType, flags: SectionFlags, plainLength: UInt64, header: [UInt8], keys: ContentKeys
    ) -> PayloadCipher {
        var prefix = ByteWriter(capacity: 4)
        prefix.u32(type.rawValue)
        var ad = ByteWriter(capacity: header.count + 16)
        ad.raw(header)
        ad.u32(type.rawValue)
        ad.u32(flags.rawValue)
        ad.u64(plainLength)
        return PayloadCipher(key: keys.sections, noncePrefix: prefix.bytes, associatedData: ad.bytes, plainLength: plainLength)
    }

    /// The cipher of the payload of a frame of `runs`, holding
    /// `uncompressedLength` bytes, whose compressed payload is
    /// `plainLength` bytes.
    static func frame(
        runs: [FileRange], uncompressedLength: UInt32, plainLength: UInt64, header: [UInt8], framesKey: SymmetricKey
    ) -> PayloadCipher {
        let firstAddress = runs[0].start
        var prefix = ByteWriter(capacity: 8)
        prefix.u64(firstAddress / CheckpointFormat.pageSize)
        let table = FrameHeader.runTable(runs)
        var ad = ByteWriter(capacity: header.count + 24 + table.count)
        ad.raw(header)
        ad.u64(firstAddress)
        ad.u64(plainLength)
        ad.u32(uncompressedLength)
        ad.u32(UInt32(runs.count))
        ad.raw(table)
        return PayloadCipher(key: framesKey, noncePrefix: prefix.bytes, associatedData: ad.bytes, plainLength: plainLength)
    }

    /// Bytes of the payload once sealed.
    var sealedLength: UInt64 { SectionRule.sealedLength(plain: plainLength) }

    var chunkCount: UInt64 { SealedChunks.count(plain: plainLength) }

    private func nonce(_ chunk: UInt64) -> AES.GCM.Nonce {
        var w = ByteWriter(capacity: 12)
        w.raw(noncePrefix)
        if noncePrefix.count == 4 {
            w.u64(chunk)
        } else {
            w.u32(UInt32(chunk))
        }
        return try! AES.GCM.Nonce(data: w.bytes)
    }

    /// Plaintext bytes of chunk `i`.
    func plainChunkLength(_ i: UInt64) -> Int {
        Int(min(SealedChunks.chunkLength, plainLength - i * SealedChunks.chunkLength))
    }

    /// Seals chunk `i` (`plain`) into `out`, which takes its ciphertext and
    /// tag (`plain.count + 16` bytes). `out` may overlap `plain`.
    func sealChunk(_ i: UInt64, _ plain: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) throws {
        precondition(plain.count == plainChunkLength(i) && out.count == plain.count + SealedChunks.tagLength)
        let box = try AES.GCM.seal(plain, using: key, nonce: nonce(i), authenticating: associatedData)
        box.ciphertext.withUnsafeBytes { out.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: plain.count) }
        box.tag.withUnsafeBytes { (out.baseAddress! + plain.count).copyMemory(from: $0.baseAddress!, byteCount: SealedChunks.tagLength) }
    }

    /// Opens chunk `i` (`sealed`: its ciphertext and tag) into `out`
    /// (`sealed.count - 16` bytes), which may overlap `sealed`. Returns
    /// false if its tag does not match.
    func openChunk(_ i: UInt64, _ sealed: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Bool {
        let n = sealed.count - SealedChunks.tagLength
        precondition(n == plainChunkLength(i) && out.count == n)
        guard let box = try? AES.GCM.SealedBox(
                nonce: nonce(i), ciphertext: UnsafeRawBufferPointer(rebasing: sealed[..<n]),
                tag: UnsafeRawBufferPointer(rebasing: sealed[n...])),
            let plain = try? AES.GCM.open(box, using: key, authenticating: associatedData)
        else { return false }
        if n > 0 {
            plain.withUnsafeBytes { out.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: n) }
        }
        return true
    }

    /// Seals the `plainLength` bytes at the start of `buffer` in place
    /// (from the last chunk back, since each grows by its tag); returns
    /// the sealed length.
    func seal(inPlace buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let sealed = Int(sealedLength)
        precondition(buffer.count >= sealed, "PayloadCipher.seal: \(buffer.count) bytes of room, \(sealed) needed")
        for i in (0..<chunkCount).reversed() {
            let n = plainChunkLength(i)
            let from = Int(i * SealedChunks.chunkLength)
            let to = Int(i * SealedChunks.sealedChunkLength)
            try sealChunk(
                i, UnsafeRawBufferPointer(rebasing: buffer[from..<from + n]),
                into: UnsafeMutableRawBufferPointer(rebasing: buffer[to..<to + n + SealedChunks.tagLength]))
        }
        return sealed
    }

    /// Opens whole sealed chunks in place, the first being chunk `first`:
    /// the sealed payload (or, from `first` on, a part of it made of whole
    /// chunks) at the start of `buffer`, from the first chunk on (each
    /// shrinks by its tag). Returns the bytes of plaintext now at the start
    /// of `buffer`, and the first chunk whose tag does not match, if any.
    func open(inPlace buffer: UnsafeMutableRawBufferPointer, firstChunk first: UInt64 = 0) -> (plain: Int, failed: UInt64?) {
        var from = 0
        var to = 0
        var i = first
        while from < buffer.count {
            precondition(i < chunkCount, "PayloadCipher.open: more than \(chunkCount) chunks")
            let n = plainChunkLength(i)
            if !openChunk(
                i, UnsafeRawBufferPointer(rebasing: buffer[from..<from + n + SealedChunks.tagLength]),
                into: UnsafeMutableRawBufferPointer(rebasing: buffer[to..<to + n]))
            {
                return (to, i)
            }
            from += n + SealedChunks.tagLength
            to += n
            i += 1
        }
        return (to, nil)
    }
}

/// Seals a payload given in pieces of any size as it comes, handing the
/// sealed chunks on: the writer's sections, whose plaintext is made in
/// pieces.
struct SealingStream {
    let cipher: PayloadCipher
    private var pending: [UInt8] = []
    private var chunk: UInt64 = 0
    private var given: UInt64 = 0

    init(_ cipher: PayloadCipher) {
        self.cipher = cipher
    }

    /// Takes `piece`, handing each chunk it completes to `emit`.
    mutating func add(_ piece: [UInt8], emit: ([UInt8]) throws -> Void) throws {
        given += UInt64(piece.count)
        precondition(given <= cipher.plainLength, "SealingStream: more than \(cipher.plainLength) bytes given")
        var at = 0
        while at < piece.count {
            let n = min(piece.count - at, Int(SealedChunks.chunkLength) - pending.count)
            pending += piece[at..<at + n]
            at += n
            if pending.count == Int(SealedChunks.chunkLength) {
                try flush(emit)
            }
        }
    }

    private mutating func flush(_ emit: ([UInt8]) throws -> Void) throws {
        var out = [UInt8](repeating: 0, count: pending.count + SealedChunks.tagLength)
        try pending.withUnsafeBytes { p in try out.withUnsafeMutableBytes { try cipher.sealChunk(chunk, p, into: $0) } }
        chunk += 1
        pending.removeAll(keepingCapacity: true)
        try emit(out)
    }

    /// Seals the last chunk (possibly empty) and hands it to `emit`.
    mutating func finish(emit: ([UInt8]) throws -> Void) throws {
        precondition(given == cipher.plainLength, "SealingStream: \(given) bytes given, \(cipher.plainLength) declared")
        try flush(emit)
        precondition(chunk == cipher.chunkCount)
    }
}
