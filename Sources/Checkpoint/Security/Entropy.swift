import Crypto

/// Where a save takes its random bytes (file keys, salts, ephemeral keys):
/// the system's generator, or for the tests' fixtures a fixed sequence, so
/// that an encrypted fixture can be made again byte for byte.
struct Entropy: Sendable {
    private let draw: @Sendable (Int) -> [UInt8]

    init(_ draw: @escaping @Sendable (Int) -> [UInt8]) {
        self.draw = draw
    }

    /// The system's cryptographically secure generator.
    static let system = Entropy { count in
        SymmetricKey(size: SymmetricKeySize(bitCount: 8 * count)).withUnsafeBytes { Array($0) }
    }

    /// `count` random bytes.
    func bytes(_ count: Int) -> [UInt8] {
        let out = draw(count)
        precondition(out.count == count, "Entropy: \(out.count) bytes drawn, \(count) asked for")
        return out
    }
}
