import Crypto
import FoundationEssentials

/// The text form of the keys pgsnap keeps in files (docs/CLI.md, "Key
/// files"): a first line naming what the key is, then the base64 of its 32
/// raw bytes, each line ending with a newline:
///
///     pgsnap-ed25519-private-v1
///     mGq1...=
///
/// The library takes keys as swift-crypto values; this is how a program
/// that keeps them in files (pgsnap) writes and reads them.
public enum CheckpointKeyFile {
    /// What a key file holds, named by its first line.
    public enum Kind: String, CaseIterable, Sendable {
        /// An Ed25519 private key (its 32-byte seed): signs checkpoints.
        case signingPrivate = "pgsnap-ed25519-private-v1"
        /// An Ed25519 public key: verifies signatures (`--trust`).
        case signingPublic = "pgsnap-ed25519-public-v1"
        /// An X25519 private key: opens checkpoints encrypted to it.
        case encryptionPrivate = "pgsnap-x25519-private-v1"
        /// An X25519 public key: a recipient to encrypt to.
        case encryptionPublic = "pgsnap-x25519-public-v1"
        /// A 256-bit symmetric key: encrypts and opens.
        case symmetric = "pgsnap-symmetric-key-v1"

        /// Whether the file holds a secret (and must not be readable by
        /// others).
        public var isSecret: Bool { self != .signingPublic && self != .encryptionPublic }
    }

    static let keyLength = 32

    /// The text of a key file holding `key`, 32 bytes of kind `kind`.
    public static func encode(_ kind: Kind, _ key: some ContiguousBytes) -> String {
        let bytes = key.withUnsafeBytes { Array($0) }
        precondition(bytes.count == keyLength, "CheckpointKeyFile.encode: \(bytes.count) bytes, not \(keyLength)")
        return kind.rawValue + "\n" + Data(bytes).base64EncodedString() + "\n"
    }

    /// The kind and the 32 bytes of the key in `text`. `name` names the
    /// file in errors.
    ///
    /// - Throws: `CheckpointUsageError` if `text` is not a key file.
    public static func decode(_ text: String, name: String) throws(CheckpointUsageError) -> (Kind, [UInt8]) {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.hasSuffix("\r") ? $0.dropLast() : $0
        }
        let header = lines.first.map(String.init) ?? ""
        guard let kind = Kind(rawValue: header) else {
            let shown = header.prefix(40).unicodeScalars.map { $0.isASCII && $0.value >= 0x20 ? String($0) : "?" }.joined()
            throw CheckpointUsageError("\(name) is not a pgsnap key file (its first line is '\(shown)', not one of \(Kind.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let rest = lines.dropFirst().filter { !$0.isEmpty }
        guard rest.count == 1, let data = Data(base64Encoded: String(rest[0])), data.count == keyLength else {
            throw CheckpointUsageError("\(name): a \(kind.rawValue) file holds one line of base64 of \(keyLength) bytes after its first line")
        }
        return (kind, Array(data))
    }

    /// The key of kind `expected` in `text`.
    static func key(_ text: String, name: String, expected: Kind) throws(CheckpointUsageError) -> [UInt8] {
        let (kind, bytes) = try decode(text, name: name)
        guard kind == expected else {
            throw CheckpointUsageError("\(name) holds a \(kind.rawValue) key, where a \(expected.rawValue) key is needed")
        }
        return bytes
    }

    public static func signingKey(_ text: String, name: String) throws -> Curve25519.Signing.PrivateKey {
        try Curve25519.Signing.PrivateKey(rawRepresentation: key(text, name: name, expected: .signingPrivate))
    }

    public static func signingPublicKey(_ text: String, name: String) throws -> Curve25519.Signing.PublicKey {
        try Curve25519.Signing.PublicKey(rawRepresentation: key(text, name: name, expected: .signingPublic))
    }

    public static func encryptionKey(_ text: String, name: String) throws -> Curve25519.KeyAgreement.PrivateKey {
        try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: key(text, name: name, expected: .encryptionPrivate))
    }

    public static func encryptionPublicKey(_ text: String, name: String) throws -> Curve25519.KeyAgreement.PublicKey {
        try Curve25519.KeyAgreement.PublicKey(rawRepresentation: key(text, name: name, expected: .encryptionPublic))
    }

    public static func symmetricKey(_ text: String, name: String) throws -> SymmetricKey {
        SymmetricKey(data: try key(text, name: name, expected: .symmetric))
    }
}
