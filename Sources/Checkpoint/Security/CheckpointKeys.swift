import Crypto

/// The keys a reader of checkpoints holds: whose signatures it requires,
/// and what opens encrypted checkpoints. Every read of a checkpoint with
/// these keys applies them (restore, verify, lazy restore, serve-uffd,
/// the metadata and identity readers), so that every file of a chain is
/// held to the same keys.
public struct CheckpointKeys: Sendable {
    /// Signers one of whom must have signed every checkpoint read. Empty:
    /// signatures are not required (and not checked beyond reporting).
    public var trustedSigners: [Curve25519.Signing.PublicKey]
    /// Private keys of X25519 recipients (`CheckpointRecipient.publicKey`).
    public var identities: [Curve25519.KeyAgreement.PrivateKey]
    /// Symmetric keys (`CheckpointRecipient.symmetricKey`).
    public var symmetricKeys: [SymmetricKey]

    public init(
        trustedSigners: [Curve25519.Signing.PublicKey] = [], identities: [Curve25519.KeyAgreement.PrivateKey] = [],
        symmetricKeys: [SymmetricKey] = []
    ) {
        self.trustedSigners = trustedSigners
        self.identities = identities
        self.symmetricKeys = symmetricKeys
    }

    /// Whether a checkpoint must carry a valid signature by a trusted
    /// signer.
    public var requiresSignature: Bool { !trustedSigners.isEmpty }

    /// Whether any key that may open an encrypted checkpoint is given.
    var opensEncryption: Bool { !identities.isEmpty || !symmetricKeys.isEmpty }

    /// Whether `publicKey` is one of the trusted signers.
    func trusts(_ publicKey: [UInt8]) -> Bool {
        trustedSigners.contains { Array($0.rawRepresentation) == publicKey }
    }
}

/// Whom a save encrypts a checkpoint to: each recipient can open it on its
/// own.
public enum CheckpointRecipient: Sendable {
    /// The holder of the matching X25519 private key
    /// (`CheckpointKeys.identities`).
    case publicKey(Curve25519.KeyAgreement.PublicKey)
    /// The holders of a 256-bit symmetric key (`CheckpointKeys.symmetricKeys`).
    case symmetricKey(SymmetricKey)

    /// The fingerprint a checkpoint shows for it.
    public var fingerprint: KeyFingerprint {
        switch self {
        case .publicKey(let key): KeyFingerprint(key)
        case .symmetricKey(let key): KeyFingerprint(key)
        }
    }
}
