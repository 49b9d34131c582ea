/// An encrypted checkpoint that the keys given cannot open. Says whom it
/// is encrypted to, by the fingerprints of their keys.
public enum CheckpointEncryptionError: Error, Hashable, Sendable, CustomStringConvertible {
    /// No key was given (`CheckpointKeys.identities`, `.symmetricKeys`).
    case keyRequired(recipients: [KeyFingerprint])
    /// None of the keys given opens it (the fingerprints of those tried).
    case noMatchingKey(recipients: [KeyFingerprint], tried: [KeyFingerprint])

    /// The fingerprints of the keys that open it.
    public var recipients: [KeyFingerprint] {
        switch self {
        case .keyRequired(let r), .noMatchingKey(let r, _): r
        }
    }

    public var description: String {
        let to = recipients.map(\.description).joined(separator: ", ")
        switch self {
        case .keyRequired:
            return "the checkpoint is encrypted (to \(to)) and no key to open it was given"
        case .noMatchingKey(_, let tried):
            return "the checkpoint is encrypted to \(to); none of the keys given (\(tried.map(\.description).joined(separator: ", "))) opens it"
        }
    }
}

/// A checkpoint whose signature a reader that requires one
/// (`CheckpointKeys.trustedSigners`) does not accept.
public struct CheckpointSignatureError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Reason: Hashable, Sendable {
        /// It carries no signature (a version-1 checkpoint never does).
        case unsigned
        /// It is signed by a key that is not trusted.
        case untrusted(KeyFingerprint)
        /// Its signature does not match its contents: it was changed after
        /// it was signed (or the signature was).
        case invalid(KeyFingerprint)
        /// Its index carries no frame digests, so the signature does not
        /// cover the frames' contents.
        case framesNotCovered
        /// A frame does not match the digest the signed index gives it.
        case frameDigestMismatch(frame: UInt64, offset: UInt64)
    }

    public var reason: Reason

    public init(_ reason: Reason) {
        self.reason = reason
    }

    public var description: String {
        switch reason {
        case .unsigned:
            "not signed, and a signature by a trusted key is required"
        case .untrusted(let signer):
            "signed by \(signer), which is not a trusted key"
        case .invalid(let signer):
            "the signature by \(signer) does not match the checkpoint: it was changed after it was signed"
        case .framesNotCovered:
            "the signature does not cover the frames' contents (the index carries no frame digests)"
        case .frameDigestMismatch(let frame, let offset):
            "frame \(frame) at offset \(offset) (0x\(String(offset, radix: 16))): does not match its digest in the signed index: it was changed after it was signed"
        }
    }
}
