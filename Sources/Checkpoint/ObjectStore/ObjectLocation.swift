/// An object in an S3-compatible store: `s3://BUCKET/KEY`.
///
/// The store is reached as `configuration` says, or, when it is nil, as
/// the environment says when the checkpoint is opened (`S3Configuration.
/// fromEnvironment()`: AWS_ACCESS_KEY_ID, AWS_REGION, AWS_ENDPOINT_URL...).
public struct ObjectLocation: Hashable, Sendable, CustomStringConvertible {
    public var bucket: String
    public var key: String
    /// How to reach the store; nil: from the environment.
    public var configuration: S3Configuration?

    /// The object `key` of `bucket`.
    ///
    /// - Throws: `CheckpointUsageError` for a bucket name or key the store
    ///   would refuse or that could not be addressed unambiguously.
    public init(bucket: String, key: String, configuration: S3Configuration? = nil) throws {
        try ObjectLocation.check(bucket: bucket, key: key)
        self.bucket = bucket
        self.key = key
        self.configuration = configuration
    }

    /// Parses `s3://BUCKET/KEY`; nil if `url` does not start with `s3://`.
    ///
    /// - Throws: `CheckpointUsageError` if it does but names no valid
    ///   bucket and key.
    public static func parse(_ url: String, configuration: S3Configuration? = nil) throws -> ObjectLocation? {
        let scheme = "s3://"
        guard url.hasPrefix(scheme) else { return nil }
        let rest = url.dropFirst(scheme.count)
        guard let slash = rest.firstIndex(of: "/") else {
            throw CheckpointUsageError("\(url): an object location is s3://BUCKET/KEY, and this one has no key")
        }
        return try ObjectLocation(bucket: String(rest[..<slash]), key: String(rest[rest.index(after: slash)...]), configuration: configuration)
    }

    /// `s3://BUCKET/KEY`.
    public var description: String { "s3://\(bucket)/\(key)" }

    /// Bucket names as S3 has them (3 to 63 of `a-z 0-9 . -`), with
    /// upper case and `_` also accepted for the stores that allow them;
    /// keys of 1 to 1024 bytes without control characters and without `.`
    /// or `..` segments (HTTP clients remove those from a path, so the
    /// request would name another key).
    static func check(bucket: String, key: String) throws {
        let bucketBytes = Array(bucket.utf8)
        let allowed: (UInt8) -> Bool = { b in
            (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
                || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: ".") || b == UInt8(ascii: "-")
                || b == UInt8(ascii: "_")
        }
        if bucketBytes.count < 3 || bucketBytes.count > 63 || !bucketBytes.allSatisfy(allowed) {
            throw CheckpointUsageError(
                "s3://\(bucket)/\(key): a bucket name is 3 to 63 characters of a-z 0-9 . - (found \"\(bucket)\")")
        }
        let keyBytes = Array(key.utf8)
        if keyBytes.isEmpty || keyBytes.count > 1024 {
            throw CheckpointUsageError("s3://\(bucket)/\(key): a key is 1 to 1024 bytes (found \(keyBytes.count))")
        }
        if keyBytes.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
            throw CheckpointUsageError("s3://\(bucket)/\(key): a key may not hold control characters")
        }
        if key.split(separator: "/", omittingEmptySubsequences: false).contains(where: { $0 == "." || $0 == ".." }) {
            throw CheckpointUsageError("s3://\(bucket)/\(key): a key may not have . or .. segments")
        }
    }
}
