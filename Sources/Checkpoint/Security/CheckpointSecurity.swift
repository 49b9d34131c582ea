import Crypto

/// What a reader found about a checkpoint's identity, signature and
/// encryption.
public struct CheckpointSecurity: Sendable {
    /// Version 2: the checkpoint's identity (see `CheckpointIdentity`).
    public var identity: CheckpointIdentity?
    /// The signature, if the checkpoint carries one (`SIGN`).
    public var signature: SignatureInfo?
    /// If the checkpoint is encrypted: the fingerprints of the keys that
    /// open it, in the order of its stanzas. Empty otherwise.
    public var recipients: [KeyFingerprint] = []

    public var isEncrypted: Bool { !recipients.isEmpty }

    public init() {}
}

/// A checkpoint's signature, as a reader found it.
public struct SignatureInfo: Sendable {
    /// The key it names as the signer.
    public var publicKey: Curve25519.Signing.PublicKey
    public var fingerprint: KeyFingerprint { KeyFingerprint(publicKey) }
    /// Whether the signature matches the checkpoint's identity. A reader
    /// that requires a signature refuses one that does not; others only
    /// report it.
    public var isValid: Bool

    /// Whether a reader holding `keys` trusts it: valid, by one of their
    /// trusted signers.
    public func isTrusted(by keys: CheckpointKeys) -> Bool {
        isValid && keys.trusts(Array(publicKey.rawRepresentation))
    }
}
