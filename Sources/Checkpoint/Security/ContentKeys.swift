import Crypto

/// The keys an encrypted checkpoint's contents are sealed with, derived
/// from its file key and the salt of its `ENCR` section with HKDF-SHA256:
/// one for the frames' payloads, one for the sealed sections. The file key
/// is random for every checkpoint, so no two checkpoints share these keys,
/// whoever they are encrypted to.
struct ContentKeys: Sendable {
    let frames: SymmetricKey
    let sections: SymmetricKey

    static let framesInfo = Array("pgsnap frames".utf8)
    static let sectionsInfo = Array("pgsnap sections".utf8)

    init(fileKey: SymmetricKey, salt: [UInt8]) {
        frames = HKDF<SHA256>.deriveKey(inputKeyMaterial: fileKey, salt: salt, info: Self.framesInfo, outputByteCount: 32)
        sections = HKDF<SHA256>.deriveKey(inputKeyMaterial: fileKey, salt: salt, info: Self.sectionsInfo, outputByteCount: 32)
    }
}
