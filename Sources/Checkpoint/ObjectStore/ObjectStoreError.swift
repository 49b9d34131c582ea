/// A request to an object store that failed: refused, not found, or not
/// answered even after retries.
///
/// Its description is one line naming the object (`s3://BUCKET/KEY`), the
/// operation, and the HTTP status and S3 error code (or, without an answer,
/// the transport error and the attempts made). It never holds credentials.
public struct ObjectStoreError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        /// The store refused the credentials or their permissions (401,
        /// 403, an invalid or expired token), or none were given.
        case accessDenied
        /// No such bucket, key or upload (404).
        case notFound
        /// The object was replaced while it was read: its ETag no longer
        /// matches the one the read started with (412).
        case changed
        /// No usable answer after every attempt: 5xx, throttling (429,
        /// `SlowDown`), refused, broken or stalled connections.
        case unavailable
        /// Any other refusal (4xx), or an answer that breaks the protocol.
        case rejected
        /// The configuration cannot work (a malformed endpoint); nothing
        /// was sent.
        case configuration
    }

    public var kind: Kind
    /// The S3 operation, e.g. `GetObject`.
    public var operation: String
    /// The object or bucket, `s3://BUCKET/KEY`.
    public var location: String
    /// The HTTP status of the last answer; nil if there was none.
    public var status: Int?
    /// The S3 error code of the last answer (`NoSuchKey`), if it had one.
    public var code: String?
    /// What went wrong, in words.
    public var detail: String
    /// Attempts made.
    public var attempts: Int

    public init(
        _ kind: Kind, operation: String, location: String, status: Int? = nil, code: String? = nil, detail: String, attempts: Int = 1
    ) {
        self.kind = kind
        self.operation = operation
        self.location = location
        self.status = status
        self.code = code
        self.detail = detail
        self.attempts = attempts
    }

    /// A configuration that cannot work.
    static func configuration(_ detail: String) -> ObjectStoreError {
        ObjectStoreError(.configuration, operation: "configuration", location: "object store", detail: detail, attempts: 0)
    }

    public var description: String {
        var text = "\(location): \(operation): "
        if let status {
            text += "HTTP \(status)"
            if let code {
                text += " \(code)"
            }
            if !detail.isEmpty {
                text += ": \(detail)"
            }
        } else {
            text += detail
        }
        if attempts > 1 {
            text += " (after \(attempts) attempts)"
        }
        return text
    }
}
