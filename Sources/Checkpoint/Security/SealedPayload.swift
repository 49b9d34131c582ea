/// A sealed section's payload read at random offsets of its plaintext:
/// the chunks that hold the bytes asked for are read and opened, each
/// checked by its tag (a section whose payload is read in part, such as
/// the page hashes a save or a verification looks up).
struct SealedPayload: Sendable {
    /// The section, as its table lists it.
    let entry: SectionEntry
    let cipher: PayloadCipher

    /// Fills `out` with the plaintext from `plainOffset` on, read from
    /// `input`.
    func read(from input: RandomAccessInput, plainOffset: UInt64, into out: UnsafeMutableRawBufferPointer) throws {
        guard !out.isEmpty else { return }
        let end = plainOffset + UInt64(out.count)
        precondition(end <= cipher.plainLength, "SealedPayload.read: bytes up to \(end) of \(cipher.plainLength)")
        let first = plainOffset / SealedChunks.chunkLength
        let last = (end - 1) / SealedChunks.chunkLength
        let storedStart = first * SealedChunks.sealedChunkLength
        let storedEnd = min(entry.length, (last + 1) * SealedChunks.sealedChunkLength)
        var bytes = try input.read(at: entry.offset + storedStart, count: Int(storedEnd - storedStart), section: .section(entry.type))
        let failed = bytes.withUnsafeMutableBytes { cipher.open(inPlace: $0, firstChunk: first).failed }
        if let failed {
            throw CheckpointError(
                .authenticationFailed, .section(entry.type), offset: entry.offset + failed * SealedChunks.sealedChunkLength,
                "chunk \(failed) of the payload does not match its AES-GCM tag: the section was changed, or belongs to another checkpoint")
        }
        let skip = Int(plainOffset - first * SealedChunks.chunkLength)
        bytes.withUnsafeBytes { out.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[skip..<skip + out.count])) }
    }
}
