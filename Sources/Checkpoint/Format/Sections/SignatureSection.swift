/// `SIGN` (tail, ancillary, the last section, never sealed): an Ed25519
/// signature over the checkpoint's identity, and the public key that
/// verifies it. A reader that does not check signatures skips it.
///
/// Payload (104 bytes): algorithm u32 (1: Ed25519), reserved u32, public
/// key (32 bytes), signature (64 bytes) over the 20 bytes
/// `pgsnap signature v1` and a zero byte, then the 32 bytes of the
/// identity.
struct SignatureSection: Hashable, Sendable {
    static let algorithm = Field(0, 4, "algorithm")
    static let reserved = Field(4, 4, "reserved")
    static let publicKey = Field(8, 32, "publicKey")
    static let signature = Field(40, 64, "signature")
    static let length = 104

    static let ed25519: UInt32 = 1
    /// What is signed, before the identity.
    static let domain = Array("pgsnap signature v1\0".utf8)

    var publicKey: [UInt8]
    var signature: [UInt8]

    /// The bytes an Ed25519 signature of `identity` signs.
    static func message(_ identity: CheckpointIdentity) -> [UInt8] {
        domain + identity.bytes
    }

    func encode() -> [UInt8] {
        var w = ByteWriter(capacity: SignatureSection.length)
        w.u32(SignatureSection.ed25519, SignatureSection.algorithm)
        w.u32(0, SignatureSection.reserved)
        w.field(SignatureSection.publicKey)
        w.raw(publicKey)
        w.field(SignatureSection.signature)
        w.raw(signature)
        return w.bytes
    }

    /// Decodes the payload found at `offset`.
    static func decode(_ bytes: [UInt8], offset: UInt64) throws(CheckpointError) -> SignatureSection {
        var r = ByteReader(bytes, base: offset, section: .section(.signature))
        guard bytes.count == length else {
            throw .field(.section(.signature), offset, "length", expected: "\(length)", found: bytes.count)
        }
        let value = try r.u32(algorithm)
        if value != ed25519 {
            throw .field(r, algorithm, expected: "\(ed25519) (Ed25519)", found: value)
        }
        try r.zeros(reserved)
        let key = Array(try r.raw(publicKey.size))
        let sig = Array(try r.raw(signature.size))
        return SignatureSection(publicKey: key, signature: sig)
    }
}
