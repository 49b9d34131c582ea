import Crypto
import FoundationEssentials

/// A short name of a key that is safe to show: the first 16 bytes of the
/// SHA-256 of a domain string and the key (a public key, or the symmetric
/// key itself). A checkpoint names its recipients by these, so that whom
/// it is encrypted to can be said without any key, and a reader picks the
/// stanza its key opens without trying them all.
public struct KeyFingerprint: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// An Ed25519 signing key (of its public key).
        case ed25519
        /// An X25519 recipient (of its public key).
        case x25519
        /// A symmetric key.
        case symmetric
    }

    public var kind: Kind
    /// The 16 bytes.
    public var bytes: [UInt8]

    static let length = EncryptionSection.fingerprintLength

    init(kind: Kind, bytes: [UInt8]) {
        self.kind = kind
        self.bytes = bytes
    }

    /// Of the bytes of a key of `kind`.
    init(kind: Kind, keyBytes: some ContiguousBytes) {
        var hash = SHA256()
        hash.update(data: Array("pgsnap \(kind.rawValue) key\0".utf8))
        keyBytes.withUnsafeBytes { hash.update(bufferPointer: $0) }
        self.init(kind: kind, bytes: Array(hash.finalize().prefix(Self.length)))
    }

    public init(_ key: Curve25519.Signing.PublicKey) {
        self.init(kind: .ed25519, keyBytes: key.rawRepresentation)
    }

    public init(_ key: Curve25519.KeyAgreement.PublicKey) {
        self.init(kind: .x25519, keyBytes: key.rawRepresentation)
    }

    public init(_ key: SymmetricKey) {
        self.init(kind: .symmetric, keyBytes: key)
    }

    /// `kind:hex`, e.g. `x25519:3f0a...` (32 hexadecimal digits).
    public var description: String {
        "\(kind.rawValue):" + hexDigits(bytes)
    }
}

extension KeyFingerprint.Kind {
    /// The kind of key that opens a stanza of `kind`.
    init(_ kind: EncryptionSection.StanzaKind) {
        switch kind {
        case .x25519: self = .x25519
        case .symmetric: self = .symmetric
        }
    }
}
