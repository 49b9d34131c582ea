import Crypto
import FoundationEssentials

/// A checkpoint's file key, wrapped once per recipient in the stanzas of
/// its `ENCR` section, in the manner of age:
///
/// - for an X25519 recipient, a new ephemeral key pair; the wrapping key is
///   HKDF-SHA256 of the X25519 shared secret, salted with the ephemeral
///   and the recipient's public keys;
/// - for a symmetric key, the wrapping key is HKDF-SHA256 of that key,
///   salted with the checkpoint's salt.
///
/// The file key is sealed with AES-256-GCM under the wrapping key (used
/// once: the nonce is zero), authenticating the checkpoint's salt.
enum FileKeyEnvelope {
    static let x25519Info = Array("pgsnap x25519 file key".utf8)
    static let symmetricInfo = Array("pgsnap symmetric file key".utf8)
    static let saltLength = 32

    /// A new file key and salt, wrapped for each of `recipients`: the
    /// `ENCR` section and the content keys.
    static func seal(for recipients: [CheckpointRecipient], entropy: Entropy) throws -> (EncryptionSection, ContentKeys) {
        precondition(!recipients.isEmpty && recipients.count <= EncryptionSection.maxStanzas, "FileKeyEnvelope: 1 to 64 recipients")
        let fileKey = SymmetricKey(data: entropy.bytes(32))
        let salt = entropy.bytes(saltLength)
        var stanzas: [EncryptionSection.Stanza] = []
        for recipient in recipients {
            switch recipient {
            case .publicKey(let publicKey):
                let ephemeral = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: entropy.bytes(32))
                let wrapping = try x25519WrappingKey(
                    secret: ephemeral.sharedSecretFromKeyAgreement(with: publicKey),
                    ephemeral: Array(ephemeral.publicKey.rawRepresentation), recipient: Array(publicKey.rawRepresentation))
                stanzas.append(EncryptionSection.Stanza(
                    kind: .x25519, fingerprint: recipient.fingerprint.bytes,
                    ephemeralPublicKey: Array(ephemeral.publicKey.rawRepresentation),
                    wrappedKey: try wrap(fileKey, with: wrapping, salt: salt)))
            case .symmetricKey(let key):
                stanzas.append(EncryptionSection.Stanza(
                    kind: .symmetric, fingerprint: recipient.fingerprint.bytes,
                    wrappedKey: try wrap(fileKey, with: symmetricWrappingKey(key, salt: salt), salt: salt)))
            }
        }
        return (EncryptionSection(salt: salt, stanzas: stanzas), ContentKeys(fileKey: fileKey, salt: salt))
    }

    /// The content keys of a checkpoint whose `ENCR` is `section`, opened
    /// with the first of `keys` that has a stanza.
    ///
    /// - Throws: `CheckpointEncryptionError` when no key is given, or none
    ///   opens a stanza.
    static func open(_ section: EncryptionSection, keys: CheckpointKeys) throws(CheckpointEncryptionError) -> ContentKeys {
        let recipients = section.stanzas.map { KeyFingerprint(kind: KeyFingerprint.Kind($0.kind), bytes: $0.fingerprint) }
        guard keys.opensEncryption else {
            throw .keyRequired(recipients: recipients)
        }
        for identity in keys.identities {
            let fingerprint = KeyFingerprint(identity.publicKey)
            for stanza in section.stanzas where stanza.kind == .x25519 && stanza.fingerprint == fingerprint.bytes {
                guard let ephemeral = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: stanza.ephemeralPublicKey),
                    let secret = try? identity.sharedSecretFromKeyAgreement(with: ephemeral),
                    let fileKey = unwrap(
                        stanza.wrappedKey,
                        with: x25519WrappingKey(
                            secret: secret, ephemeral: stanza.ephemeralPublicKey, recipient: Array(identity.publicKey.rawRepresentation)),
                        salt: section.salt)
                else { continue }
                return ContentKeys(fileKey: fileKey, salt: section.salt)
            }
        }
        for key in keys.symmetricKeys {
            let fingerprint = KeyFingerprint(key)
            for stanza in section.stanzas where stanza.kind == .symmetric && stanza.fingerprint == fingerprint.bytes {
                if let fileKey = unwrap(stanza.wrappedKey, with: symmetricWrappingKey(key, salt: section.salt), salt: section.salt) {
                    return ContentKeys(fileKey: fileKey, salt: section.salt)
                }
            }
        }
        let tried = keys.identities.map { KeyFingerprint($0.publicKey) } + keys.symmetricKeys.map { KeyFingerprint($0) }
        throw .noMatchingKey(recipients: recipients, tried: tried)
    }

    private static func x25519WrappingKey(secret: SharedSecret, ephemeral: [UInt8], recipient: [UInt8]) -> SymmetricKey {
        secret.hkdfDerivedSymmetricKey(using: SHA256.self, salt: ephemeral + recipient, sharedInfo: x25519Info, outputByteCount: 32)
    }

    private static func symmetricWrappingKey(_ key: SymmetricKey, salt: [UInt8]) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: key, salt: salt, info: symmetricInfo, outputByteCount: 32)
    }

    /// The wrapping key is used once: a zero nonce.
    private static var nonce: AES.GCM.Nonce {
        try! AES.GCM.Nonce(data: [UInt8](repeating: 0, count: 12))
    }

    private static func wrap(_ fileKey: SymmetricKey, with key: SymmetricKey, salt: [UInt8]) throws -> [UInt8] {
        let box = try fileKey.withUnsafeBytes { try AES.GCM.seal($0, using: key, nonce: nonce, authenticating: salt) }
        return Array(box.ciphertext) + Array(box.tag)
    }

    private static func unwrap(_ wrapped: [UInt8], with key: SymmetricKey, salt: [UInt8]) -> SymmetricKey? {
        let cut = wrapped.count - SealedChunks.tagLength
        guard cut == 32,
            let box = try? AES.GCM.SealedBox(nonce: nonce, ciphertext: wrapped[..<cut], tag: wrapped[cut...]),
            let fileKey = try? AES.GCM.open(box, using: key, authenticating: salt)
        else { return nil }
        return SymmetricKey(data: fileKey)
    }
}
