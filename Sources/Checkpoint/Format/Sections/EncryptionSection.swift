/// `ENCR` (head, critical, the first head section, never sealed): how the
/// checkpoint is encrypted and for whom. A random file key, wrapped once
/// per recipient (a stanza, in the manner of age), and a random salt from
/// which, with the file key, the keys of the frames and of the sealed
/// sections are derived (see `ContentKeys`).
///
/// Payload: suite u32 (1: X25519, HKDF-SHA256, AES-256-GCM), stanzaCount
/// u32 (1 to 64), salt (32 bytes), then the stanzas, which fill the
/// payload exactly. A stanza: kind u32 (1: X25519, 2: symmetric key),
/// fingerprint (16 bytes: which key opens it), then for X25519 the
/// ephemeral public key (32 bytes), and for both the wrapped file key (32
/// bytes of ciphertext and a 16-byte tag).
struct EncryptionSection: Hashable, Sendable {
    static let suite = Field(0, 4, "suite")
    static let stanzaCount = Field(4, 4, "stanzaCount")
    static let salt = Field(8, 32, "salt")
    static let fixedLength = 40

    /// The only suite defined: X25519, HKDF-SHA256, AES-256-GCM.
    static let suiteX25519HKDFAESGCM: UInt32 = 1
    static let maxStanzas = 64
    static let fingerprintLength = 16
    static let keyLength = 32
    static let wrappedKeyLength = 32 + SealedChunks.tagLength
    static let maxLength = fixedLength + maxStanzas * Stanza.length(.x25519)

    /// What opens a stanza.
    enum StanzaKind: UInt32, Sendable {
        /// The private key of an X25519 recipient.
        case x25519 = 1
        /// A symmetric key.
        case symmetric = 2
    }

    /// The file key, wrapped for one recipient.
    struct Stanza: Hashable, Sendable {
        var kind: StanzaKind
        /// Names the key that opens it (see `KeyFingerprint`).
        var fingerprint: [UInt8]
        /// X25519: the sender's ephemeral public key. Empty otherwise.
        var ephemeralPublicKey: [UInt8] = []
        /// The file key, sealed with the wrapping key.
        var wrappedKey: [UInt8]

        static func length(_ kind: StanzaKind) -> Int {
            4 + fingerprintLength + (kind == .x25519 ? keyLength : 0) + wrappedKeyLength
        }
    }

    var salt: [UInt8]
    var stanzas: [Stanza]

    func encode() -> [UInt8] {
        var w = ByteWriter(capacity: EncryptionSection.maxLength)
        w.u32(EncryptionSection.suiteX25519HKDFAESGCM, EncryptionSection.suite)
        w.u32(UInt32(stanzas.count), EncryptionSection.stanzaCount)
        w.field(EncryptionSection.salt)
        w.raw(salt)
        for s in stanzas {
            precondition(s.fingerprint.count == EncryptionSection.fingerprintLength && s.wrappedKey.count == EncryptionSection.wrappedKeyLength)
            w.u32(s.kind.rawValue)
            w.raw(s.fingerprint)
            w.raw(s.ephemeralPublicKey)
            w.raw(s.wrappedKey)
        }
        return w.bytes
    }

    /// Decodes the payload found at `offset`.
    static func decode(_ bytes: [UInt8], offset: UInt64) throws(CheckpointError) -> EncryptionSection {
        let section = CheckpointSection.section(.encryption)
        var r = ByteReader(bytes, base: offset, section: section)
        let suiteValue = try r.u32(suite)
        if suiteValue != suiteX25519HKDFAESGCM {
            throw .field(r, suite, expected: "\(suiteX25519HKDFAESGCM) (X25519, HKDF-SHA256, AES-256-GCM)", found: suiteValue)
        }
        let count = try r.u32(stanzaCount)
        guard count >= 1 && count <= UInt32(maxStanzas) else {
            throw .field(r, stanzaCount, expected: "1 to \(maxStanzas)", found: count)
        }
        let saltBytes = Array(try r.raw(salt.size))
        var stanzas: [Stanza] = []
        for i in 0..<Int(count) {
            let at = r.offset
            let rawKind = try r.u32()
            guard let kind = StanzaKind(rawValue: rawKind) else {
                throw .field(section, at, "stanza \(i) kind", expected: "1 (X25519) or 2 (symmetric key)", found: rawKind)
            }
            let fingerprint = Array(try r.raw(fingerprintLength))
            let ephemeral = kind == .x25519 ? Array(try r.raw(keyLength)) : []
            let wrapped = Array(try r.raw(wrappedKeyLength))
            stanzas.append(Stanza(kind: kind, fingerprint: fingerprint, ephemeralPublicKey: ephemeral, wrappedKey: wrapped))
        }
        if r.position != bytes.count {
            throw .field(section, r.offset, "length", expected: "\(r.position) bytes for \(count) stanzas", found: bytes.count)
        }
        return EncryptionSection(salt: saltBytes, stanzas: stanzas)
    }
}
