import Crypto

/// What one scan of a checkpoint knows and checks about its identity,
/// encryption and signature, fed by the scanner and its section reader as
/// they read (docs/FORMAT.md, "Identity", "Encryption", "Signatures").
///
/// - The manifest: every part is hashed as it is decoded, from the bytes
///   decoded (the header by `readHeader`, the head region and the tail
///   sections by `SectionReader`, the index by `IndexDecoder`), whatever
///   order the scan reads them in; `authenticate` puts them together.
/// - Encryption: the `ENCR` section is read and opened before any sealed
///   section: from a file, right after the header (the tail, which holds
///   sealed sections, is read before the head); from a stream, as the
///   first head section. Sealed sections are opened by `SectionReader`.
/// - `authenticate`, once everything but the frames is read (from a file,
///   before any memory is created; from a stream, at the end), checks
///   `AUTH` (an encrypted checkpoint) and, when the keys require it, the
///   signature; frames are checked by the `FrameOpener` it makes.
final class ReadSecurity {
    let keys: CheckpointKeys
    /// What the scan found, for `CheckpointMetadata.security`.
    private(set) var summary = CheckpointSecurity()

    private var header: [UInt8] = []
    private var version: UInt32 = 0
    private var headerPart: ManifestPart?
    /// Every byte of the head region, table and padding included.
    private var headPart = PartHasher()
    /// The tail sections in the manifest, as read.
    private var tailParts: [(entry: SectionEntry, part: PartHasher)] = []
    private var signatureSection: SignatureSection?
    /// `AUTH`'s payload, as stored.
    private var sealedIdentity: (entry: SectionEntry, bytes: [UInt8])?

    /// The `ENCR` section's payload, as first read, and what it opens.
    private var encryptionBytes: [UInt8]?
    private var contentKeys: ContentKeys?
    private var authenticated = false
    private var digestRecord: DigestRecord?
    /// A tail section read in part only (`payloadNotHashed`): the identity
    /// is not known.
    private var manifestIncomplete = false

    init(keys: CheckpointKeys) {
        self.keys = keys
    }

    var isEncrypted: Bool { encryptionBytes != nil }

    // MARK: The header

    /// The header was read (its `bytes`). From a file (`file`), the head
    /// table is looked at for an `ENCR` section, which is opened now: the
    /// tail's sealed sections are read before the head.
    func headerRead(_ decoded: CheckpointHeader, bytes: [UInt8], file: RandomAccessInput?) throws {
        header = Array(bytes.prefix(HeaderLayout.recordLength))
        version = decoded.version
        var part = PartHasher()
        part.add(header)
        headerPart = part.finish()
        guard decoded.version >= 2 else {
            if keys.requiresSignature {
                throw CheckpointSignatureError(.unsigned)
            }
            return
        }
        guard let file, let entry = try? firstHeadEntry(decoded, file: file), entry.type == .encryption else { return }
        let payload = try SectionReader(header: decoded, source: .random(file), security: nil).readPayload(entry)
        try encryptionRead(entry, payload)
    }

    /// The first entry of the head table of a file, if the table decodes:
    /// if it does not, the scan finds out where it reads the head.
    private func firstHeadEntry(_ header: CheckpointHeader, file: RandomAccessInput) throws -> SectionEntry? {
        let decoder = SectionTableDecoder(
            header: header, placement: .head, tableOffset: UInt64(HeaderLayout.recordLength), regionEnd: nil, seen: [])
        let at = UInt64(HeaderLayout.recordLength)
        let count = try decoder.decodeCount(try file.read(at: at, count: SectionTableLayout.fixedLength, section: .sectionTable(.head)))
        let table = try file.read(at: at, count: Int(sectionTableLength(count: count)), section: .sectionTable(.head))
        return try decoder.decode(table, count: count).first
    }

    /// `ENCR`'s payload: opened with the keys, once; read again (the head,
    /// from a file), it must not have changed.
    private func encryptionRead(_ entry: SectionEntry, _ payload: [UInt8]) throws {
        if let encryptionBytes {
            if encryptionBytes != payload {
                throw CheckpointError.field(
                    .section(.encryption), entry.offset, "payload", expected: "the bytes read first", found: "others: the file changed while being read")
            }
            return
        }
        let section = try EncryptionSection.decode(payload, offset: entry.offset)
        summary.recipients = section.stanzas.map { KeyFingerprint(kind: KeyFingerprint.Kind($0.kind), bytes: $0.fingerprint) }
        contentKeys = try FileKeyEnvelope.open(section, keys: keys)
        encryptionBytes = payload
    }

    // MARK: Sections

    /// Checks a section table's entries against the rules of encryption
    /// and signatures: `ENCR` first in the head; in an encrypted
    /// checkpoint, every known section that may be sealed is, and `AUTH`
    /// is the last tail section but `SIGN`; otherwise none is sealed;
    /// `SIGN` last.
    func checkTable(_ entries: [SectionEntry], placement: SectionPlacement, tableOffset: UInt64) throws {
        let table = CheckpointSection.sectionTable(placement)
        func flagsOffset(_ i: Int) -> UInt64 {
            tableOffset + UInt64(SectionTableLayout.fixedLength + i * SectionEntryLayout.recordLength + SectionEntryLayout.flags.offset)
        }
        func typeOffset(_ i: Int) -> UInt64 {
            tableOffset + UInt64(SectionTableLayout.fixedLength + i * SectionEntryLayout.recordLength)
        }
        if let i = entries.firstIndex(where: { $0.type == .encryption }), i != 0 {
            throw CheckpointError.field(table, typeOffset(i), "entry \(i) type", expected: "ENCR as the first head section", found: "ENCR as entry \(i)")
        }
        let encrypted = placement == .head ? entries.first?.type == .encryption : isEncrypted
        for (i, entry) in entries.enumerated() {
            if !encrypted && entry.isSealed {
                throw CheckpointError.field(
                    table, entry.offset, "\(entry.type) flags", expected: "an ENCR section for a sealed section", found: "none")
            }
            if encrypted && !entry.isSealed && SectionRule.rule(for: entry.type)?.sealable == true {
                throw CheckpointError.field(
                    table, flagsOffset(i), "entry \(i) flags", expected: "\(entry.type) sealed (the checkpoint is encrypted)", found: "not sealed")
            }
            if entry.type == .authentication && (!entry.isSealed || !encrypted) {
                throw CheckpointError.field(table, flagsOffset(i), "entry \(i) flags", expected: "AUTH sealed, with an ENCR section", found: "not sealed")
            }
            if entry.type == .signature && i != entries.count - 1 {
                throw CheckpointError.field(table, typeOffset(i), "entry \(i) type", expected: "SIGN as the last section", found: "SIGN as entry \(i) of \(entries.count)")
            }
        }
        if placement == .tail && encrypted {
            let last = entries.last?.type == .signature ? entries.count - 2 : entries.count - 1
            guard last >= 0, entries[last].type == .authentication else {
                throw CheckpointError.field(
                    table, tableOffset, "sections", expected: "AUTH as the last section but SIGN (the checkpoint is encrypted)",
                    found: entries.map(\.type.description).joined(separator: ", "))
            }
        }
    }

    /// Bytes of a section table, of its padding, read: the head's are part
    /// of the manifest.
    func regionRead(_ bytes: [UInt8], placement: SectionPlacement) {
        if placement == .head {
            headPart.add(bytes)
        }
    }

    /// A piece of a section's payload, as stored, read.
    func payloadRead(_ entry: SectionEntry, _ piece: [UInt8]) {
        if entry.placement == .head {
            headPart.add(piece)
        } else if entry.type.isOutsideManifest {
            if entry.type == .authentication {
                sealedIdentity = (entry, (sealedIdentity?.bytes ?? []) + piece)
            }
        } else {
            if tailParts.last?.entry != entry {
                tailParts.append((entry, PartHasher()))
            }
            tailParts[tailParts.count - 1].part.add(piece)
        }
    }

    /// A section's payload was read whole and its CRC checked: the
    /// sections this reader acts on are decoded.
    func payloadEnded(_ entry: SectionEntry, _ payload: [UInt8]?) throws {
        switch entry.type {
        case .encryption:
            if let payload { try encryptionRead(entry, payload) }
        case .signature:
            if let payload { signatureSection = try SignatureSection.decode(payload, offset: entry.offset) }
        default:
            if entry.placement == .tail && !entry.type.isOutsideManifest && tailParts.last?.entry != entry {
                // An empty payload: no piece was read.
                tailParts.append((entry, PartHasher()))
            }
        }
    }

    /// `entry`'s payload was read in part, not through the section reader
    /// (a plain, unsigned checkpoint's page hashes, for a lazy restore):
    /// the scan computes no identity. Never for a checkpoint whose
    /// identity is checked.
    func payloadNotHashed(_ entry: SectionEntry) {
        precondition(!isEncrypted && !keys.requiresSignature, "ReadSecurity: \(entry.type) read in part, and the identity is checked")
        manifestIncomplete = true
    }

    /// Reads of a sealed payload at random offsets, for later.
    func sealedPayload(_ entry: SectionEntry) throws -> SealedPayload {
        SealedPayload(entry: entry, cipher: try cipher(for: entry))
    }

    /// Whether the section reader must hand `entry`'s whole payload to
    /// `payloadEnded`.
    func wantsPayload(_ entry: SectionEntry) -> Bool {
        entry.type == .encryption || entry.type == .signature
    }

    /// Opens whole chunks of a sealed section's payload (`stored`, the
    /// first being chunk `first`) to their plaintext.
    func open(_ entry: SectionEntry, _ stored: [UInt8], firstChunk first: UInt64 = 0) throws -> [UInt8] {
        let cipher = try cipher(for: entry)
        var bytes = stored
        let (plain, failed) = bytes.withUnsafeMutableBytes { cipher.open(inPlace: $0, firstChunk: first) }
        if let failed {
            throw CheckpointError(
                .authenticationFailed, .section(entry.type), offset: entry.offset + failed * SealedChunks.sealedChunkLength,
                "chunk \(failed) of the payload does not match its AES-GCM tag: the section was changed, or belongs to another checkpoint")
        }
        bytes.removeLast(bytes.count - plain)
        return bytes
    }

    /// The cipher of a sealed section's payload.
    private func cipher(for entry: SectionEntry) throws -> PayloadCipher {
        guard let contentKeys else {
            preconditionFailure("ReadSecurity: sealed \(entry.type) read before ENCR was opened")
        }
        guard let plain = SealedChunks.plainLength(sealed: entry.length) else {
            throw CheckpointError.field(
                .section(entry.type), entry.offset, "length", expected: "the length of a sealed payload (a multiple of 65552 plus 16 to 65551)",
                found: entry.length)
        }
        return PayloadCipher.section(entry.type, flags: entry.flags, plainLength: plain, header: header, keys: contentKeys)
    }

    // MARK: Authentication

    /// Everything but the frames is read: the identity is put together,
    /// `AUTH` and, if the keys require it, the signature are checked. From
    /// a file this runs before any memory is created; from a stream, after
    /// the frames, whose digests (recorded as they were read, if
    /// `framesRead`) are then compared with the index's.
    func authenticate(index: IndexDecoder, framesRead: Bool) throws {
        guard version >= 2, let headerPart else { return }
        if manifestIncomplete {
            // Neither sealed nor signed (or not checked): nothing to check
            // the identity against, and the scan's would be wrong.
            authenticated = true
            return
        }
        var hasher = ManifestHasher()
        hasher.append(headerPart)
        hasher.append(headPart.finish())
        hasher.append(index.manifestPart.finish())
        for (entry, part) in tailParts {
            hasher.append(.tailSection(type: entry.type, flags: entry.flags, length: entry.length))
            hasher.append(part.finish())
        }
        let identity = hasher.finish()
        summary.identity = identity

        if isEncrypted {
            guard let (entry, stored) = sealedIdentity else {
                preconditionFailure("ReadSecurity: an encrypted checkpoint without AUTH passed the table checks")
            }
            let bytes = try open(entry, stored)
            if bytes != identity.bytes {
                throw CheckpointError(
                    .authenticationFailed, .section(.authentication), offset: entry.offset,
                    "the sealed identity \(hexDigits(bytes.prefix(CheckpointIdentity.length))) is not the checkpoint's, \(identity): it was changed after it was sealed")
            }
        }
        if let signatureSection {
            let info = CheckpointSigning.verify(signatureSection, identity: identity)
            summary.signature = info
            if keys.requiresSignature {
                let signer = info?.fingerprint ?? KeyFingerprint(kind: .ed25519, keyBytes: signatureSection.publicKey)
                guard keys.trusts(signatureSection.publicKey) else {
                    throw CheckpointSignatureError(.untrusted(signer))
                }
                guard info?.isValid == true else {
                    throw CheckpointSignatureError(.invalid(signer))
                }
            }
        } else if keys.requiresSignature {
            throw CheckpointSignatureError(.unsigned)
        }
        if keys.requiresSignature && index.totals.frameCount > 0 && index.shape.entryLength != IndexEntryLayout.digest.end {
            throw CheckpointSignatureError(.framesNotCovered)
        }
        authenticated = true
        try digestRecord?.check(against: index.entries, complete: framesRead)
    }

    /// What checks and opens the frames, once made.
    private var opener: FrameOpener?
    private var openerMade = false

    /// Bytes a sealed payload may add to a frame's compressed length.
    func sealOverhead(_ header: CheckpointHeader) -> Int {
        isEncrypted ? FrameOpener.sealOverhead(frameLimit: header.frameLimit) : 0
    }

    /// What checks and opens the frames, or nil if nothing needs to: from
    /// a file, once authenticated, with the signed index's digests; from a
    /// stream, before, recording digests.
    func frameOpener(_ index: IndexDecoder?) -> FrameOpener? {
        if openerMade {
            return opener
        }
        openerMade = true
        var digests: FrameOpener.FrameDigests?
        if keys.requiresSignature {
            if authenticated, let index {
                digests = .expected(index.entries.map(\.digest))
            } else {
                let record = DigestRecord()
                digestRecord = record
                digests = .recorded(record)
            }
        }
        if contentKeys != nil || digests != nil {
            opener = FrameOpener(header: header, framesKey: contentKeys?.frames, digests: digests)
        }
        return opener
    }
}
