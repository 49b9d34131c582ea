import Crypto

/// Ed25519 signatures over a checkpoint's identity (`SIGN`).
enum CheckpointSigning {
    /// The `SIGN` section signing `identity` with `key`.
    static func sign(_ identity: CheckpointIdentity, with key: Curve25519.Signing.PrivateKey) throws -> SignatureSection {
        SignatureSection(
            publicKey: Array(key.publicKey.rawRepresentation),
            signature: Array(try key.signature(for: SignatureSection.message(identity))))
    }

    /// What `section` says of `identity`: its signer, and whether it signs
    /// it. A public key that is not one (or a signature that does not
    /// verify) makes an invalid signature, not an error: a reader that
    /// requires signatures refuses it, others report it.
    static func verify(_ section: SignatureSection, identity: CheckpointIdentity) -> SignatureInfo? {
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: section.publicKey) else { return nil }
        return SignatureInfo(publicKey: key, isValid: key.isValidSignature(section.signature, for: SignatureSection.message(identity)))
    }
}
