import Crypto

/// What one save does for its checkpoint's identity, encryption and
/// signature, as the writer goes (docs/FORMAT.md, "Identity",
/// "Encryption", "Signatures"):
///
/// - the manifest's parts, from the bytes written (the header, the head
///   region, the index, each tail section), so that the identity is known
///   when the tail is written, without reading anything back;
/// - encryption: a file key wrapped for every recipient (`ENCR`, the first
///   head section), every sealable section sealed, the frames sealed by
///   the workers (`FrameSealer`), and the identity sealed (`AUTH`);
/// - signing: every frame's digest in the index (72-byte entries), and the
///   identity signed (`SIGN`, the last section).
final class WriteSecurity {
    private let signingKey: Curve25519.Signing.PrivateKey?
    private let encryption: (section: EncryptionSection, keys: ContentKeys)?
    private var header: [UInt8] = []
    private var parts: [ManifestPart] = []
    /// Known once the tail sections are made.
    private(set) var identity: CheckpointIdentity?

    init(options: SaveOptions) throws {
        signingKey = options.signingKey
        encryption = options.recipients.isEmpty ? nil : try FileKeyEnvelope.seal(for: options.recipients, entropy: options.entropy)
    }

    /// Bytes of an index entry: with the frame's digest when signing.
    var indexEntryLength: Int {
        signingKey == nil ? IndexEntryLayout.recordLength : IndexEntryLayout.digest.end
    }

    /// What the workers do to each frame's payload; nil when nothing.
    var frameSealer: FrameSealer? {
        guard encryption != nil || signingKey != nil else { return nil }
        return FrameSealer(header: header, framesKey: encryption?.keys.frames, digests: signingKey != nil)
    }

    /// The digest of a frame for the index: of its header as written and
    /// its payload's digest (from the worker). Empty when not signing.
    func frameDigest(header frameHeader: [UInt8], payloadDigest: [UInt8]?) -> [UInt8] {
        payloadDigest.map { FrameDigest.digest(header: frameHeader, payloadDigest: $0) } ?? []
    }

    /// The header as written: the first part, and the associated data of
    /// everything sealed.
    func headerWritten(_ bytes: [UInt8]) {
        header = bytes
        var part = PartHasher()
        part.add(bytes)
        parts = [part.finish()]
    }

    /// The head sections to write, in order: `ENCR` first and every
    /// sealable section sealed, when encrypting.
    func headSections(_ sections: [CheckpointWriter.OutgoingSection]) throws -> [CheckpointWriter.OutgoingSection] {
        guard let encryption else { return sections }
        return [CheckpointWriter.OutgoingSection(.encryption, flags: .critical, bytes: encryption.section.encode())]
            + (try sections.map(sealedIfSealable))
    }

    /// The head region (table, payloads, padding) as written.
    func headWritten(_ part: ManifestPart) {
        parts.append(part)
    }

    /// The index record as written.
    func indexWritten(_ bytes: [UInt8]) {
        var part = PartHasher()
        part.add(bytes)
        parts.append(part.finish())
    }

    /// The tail sections to write: `sections` (sealed when encrypting),
    /// then `AUTH` (encrypting) and `SIGN` (signing), which carry the
    /// identity the others complete.
    func tailSections(_ sections: [CheckpointWriter.OutgoingSection]) throws -> [CheckpointWriter.OutgoingSection] {
        precondition(parts.count == 3, "WriteSecurity: the tail before the header, head and index")
        var out = try sections.map(sealedIfSealable)
        var hasher = ManifestHasher()
        for part in parts {
            hasher.append(part)
        }
        for section in out {
            hasher.append(.tailSection(type: section.type, flags: section.flags, length: section.length))
            hasher.append(try section.manifestPart())
        }
        let identity = hasher.finish()
        self.identity = identity
        if let encryption {
            out.append(
                try CheckpointWriter.OutgoingSection(.authentication, flags: .critical, bytes: identity.bytes)
                    .sealed(header: header, keys: encryption.keys))
        }
        if let signingKey {
            out.append(
                CheckpointWriter.OutgoingSection(.signature, flags: [], bytes: try CheckpointSigning.sign(identity, with: signingKey).encode()))
        }
        return out
    }

    private func sealedIfSealable(_ section: CheckpointWriter.OutgoingSection) throws -> CheckpointWriter.OutgoingSection {
        guard let encryption, SectionRule.rule(for: section.type)?.sealable == true else { return section }
        return try section.sealed(header: header, keys: encryption.keys)
    }
}
