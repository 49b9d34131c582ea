import Checkpoint

/// How a W-save checkpoint is protected: `--protect`.
public enum Protection: String, Sendable {
    case none
    /// Signed (Ed25519, frame digests), restored with the signer trusted.
    case signed
    /// Encrypted to an X25519 recipient, restored with its private key.
    case encrypted
    /// Both.
    case signedEncrypted = "signed-encrypted"

    // The test keys of fixtures/keys (test-only: their private halves are
    // public).
    public static let signer = "pgsnap-ed25519-private-v1\nhkH7t7l4wZfY50nT4PHFaPnd3YYSqpVK+OA5U0j27aM=\n"
    public static let signerPublic = "pgsnap-ed25519-public-v1\n4ItHEQ4GFxlAe3WI/VDoPt6agIyn+zj/4PWx7x7SoOw=\n"
    public static let recipient = "pgsnap-x25519-private-v1\nKr+VcIe0VkpmKbiP9pc6LuxFYfAdMvaNxr5r1c5rhSA=\n"
    public static let recipientPublic = "pgsnap-x25519-public-v1\ngi51M4UympNY/im+2NMJoZVo4TtCAQXtAKjPyPrWyhQ=\n"

    public var signs: Bool { self == .signed || self == .signedEncrypted }
    public var encrypts: Bool { self == .encrypted || self == .signedEncrypted }

    public func apply(to options: inout SaveOptions) throws {
        if signs {
            options.signingKey = try CheckpointKeyFile.signingKey(Self.signer, name: "signer")
        }
        if encrypts {
            options.recipients = [.publicKey(try CheckpointKeyFile.encryptionPublicKey(Self.recipientPublic, name: "recipient.pub"))]
        }
    }

    public func apply(to options: inout RestoreOptions) throws {
        if signs {
            options.keys.trustedSigners = [try CheckpointKeyFile.signingPublicKey(Self.signerPublic, name: "signer.pub")]
        }
        if encrypts {
            options.keys.identities = [try CheckpointKeyFile.encryptionKey(Self.recipient, name: "recipient")]
        }
    }
}
