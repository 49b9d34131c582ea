#if canImport(Glibc)
import Glibc
#endif

/// AWS credentials. Never part of a message: `description` shows none of
/// them.
public struct S3Credentials: Hashable, Sendable, CustomStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: String
    /// For temporary credentials (an assumed role): sent as
    /// `x-amz-security-token`.
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    public var description: String { "S3Credentials(redacted)" }
}

/// How requests name the bucket.
public enum S3Addressing: Hashable, Sendable {
    /// `https://BUCKET.s3.REGION.amazonaws.com/KEY` for AWS (unless the
    /// bucket name is not a DNS label), path style for a custom endpoint.
    case automatic
    /// `ENDPOINT/BUCKET/KEY`.
    case path
    /// `BUCKET.ENDPOINT-HOST/KEY`.
    case virtualHosted
}

/// When and how often a failed request is tried again: 5xx answers,
/// throttling (429, `SlowDown`) and broken or refused connections, with
/// exponential backoff and full jitter (a random wait between 0 and
/// `min(maxDelay, baseDelay × 2^(attempt-1))`).
public struct S3RetryPolicy: Hashable, Sendable {
    /// Attempts in all, the first one included (at least 1).
    public var maxAttempts: Int = 5
    /// Seconds.
    public var baseDelay: Double = 0.2
    /// Seconds.
    public var maxDelay: Double = 10

    public init(maxAttempts: Int = 5, baseDelay: Double = 0.2, maxDelay: Double = 10) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    /// The wait before attempt `attempt + 1`, after `attempt` failed ones.
    func delay(after attempt: Int) -> Double {
        let ceiling = min(maxDelay, baseDelay * Double(1 << min(attempt - 1, 30)))
        return Double.random(in: 0...max(0, ceiling))
    }
}

/// How to reach an S3-compatible store, and how hard to work it.
///
/// `fromEnvironment()` reads it the way the AWS tools do; every field can
/// then be changed in code.
public struct S3Configuration: Hashable, Sendable, CustomStringConvertible {
    /// Nil: requests are not signed (a public bucket).
    public var credentials: S3Credentials?
    /// The region requests are signed for.
    public var region: String = "us-east-1"
    /// A custom endpoint (`http://127.0.0.1:9000`, `https://minio.example`):
    /// nil for AWS itself (`https://s3.REGION.amazonaws.com`).
    public var endpoint: String?
    public var addressing: S3Addressing = .automatic
    public var retry = S3RetryPolicy()
    /// Requests one save or one sequential read keeps in flight: parts
    /// uploaded at once, blocks read ahead.
    public var maxConcurrentRequests: Int = 4
    /// Bytes of each part of a multipart upload (the first 1000 parts;
    /// then the size doubles every 1000 parts, so that the 10 000 parts S3
    /// allows hold several TiB). At least 5 MiB, S3's minimum.
    public var partSize: Int = 8 << 20
    /// Bytes of each block a sequential read (restore, verify) fetches
    /// ahead.
    public var readBlockSize: Int = 8 << 20
    /// Bytes of the object's end fetched by the first request: the
    /// trailer, the index and the tail sections of most checkpoints.
    public var suffixLength: Int = 1 << 20
    /// Seconds to wait for a connection.
    public var connectTimeout: Int = 10
    /// A transfer that moves no byte for this many seconds is broken
    /// (and tried again).
    public var stallTimeout: Int = 30

    public init(credentials: S3Credentials? = nil, region: String = "us-east-1", endpoint: String? = nil) {
        self.credentials = credentials
        self.region = region
        self.endpoint = endpoint
    }

    /// The smallest part S3 accepts but for the last one.
    public static let minimumPartSize = 5 << 20

    /// Reads the configuration as the AWS CLI and SDKs do:
    ///
    /// - `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, for temporary
    ///   credentials, `AWS_SESSION_TOKEN`;
    /// - `AWS_REGION`, else `AWS_DEFAULT_REGION`, else `us-east-1`;
    /// - `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`: an S3-compatible
    ///   store, addressed path-style;
    /// - `AWS_MAX_ATTEMPTS`: attempts per request, the first included.
    ///
    /// - Throws: `ObjectStoreError` (`.configuration`) for a malformed
    ///   value, or a key without its secret.
    public static func fromEnvironment(_ environment: [String: String]? = nil) throws -> S3Configuration {
        let env = environment ?? processEnvironment()
        func value(_ name: String) -> String? {
            guard let v = env[name], !v.isEmpty else { return nil }
            return v
        }
        var configuration = S3Configuration()
        switch (value("AWS_ACCESS_KEY_ID"), value("AWS_SECRET_ACCESS_KEY")) {
        case (let id?, let secret?):
            configuration.credentials = S3Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: value("AWS_SESSION_TOKEN"))
        case (nil, nil):
            break
        case (nil, _):
            throw ObjectStoreError.configuration("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not")
        case (_, nil):
            throw ObjectStoreError.configuration("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
        }
        if let region = value("AWS_REGION") ?? value("AWS_DEFAULT_REGION") {
            configuration.region = region
        }
        if let endpoint = value("AWS_ENDPOINT_URL_S3") ?? value("AWS_ENDPOINT_URL") {
            configuration.endpoint = endpoint
        }
        if let attempts = value("AWS_MAX_ATTEMPTS") {
            guard let n = Int(attempts), n >= 1, n <= 100 else {
                throw ObjectStoreError.configuration("AWS_MAX_ATTEMPTS must be a number from 1 to 100, not \"\(attempts)\"")
            }
            configuration.retry.maxAttempts = n
        }
        _ = try configuration.resolvedEndpoint()
        return configuration
    }

    /// No credential appears here.
    public var description: String {
        "S3Configuration(endpoint: \(endpoint ?? "AWS"), region: \(region), credentials: \(credentials == nil ? "none" : "set"))"
    }

    /// The checked endpoint.
    func resolvedEndpoint() throws -> S3Endpoint {
        if let endpoint {
            return try S3Endpoint(parsing: endpoint)
        }
        guard !region.isEmpty, region.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7A) })
        else {
            throw ObjectStoreError.configuration("the region \"\(region)\" is not a region name (a-z 0-9 -)")
        }
        return S3Endpoint(scheme: "https", authority: "s3.\(region).amazonaws.com", basePath: "", isAWS: true)
    }

    /// The process's environment.
    static func processEnvironment() -> [String: String] {
        var out: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                out[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            p += 1
        }
        return out
    }
}

/// Where requests go: a scheme, a host (and port) and a path prefix.
struct S3Endpoint: Hashable, Sendable {
    var scheme: String
    /// `host` or `host:port`.
    var authority: String
    /// Empty, or a path starting with `/` and not ending with one.
    var basePath: String
    /// AWS itself, rather than a custom endpoint.
    var isAWS = false

    init(scheme: String, authority: String, basePath: String, isAWS: Bool) {
        self.scheme = scheme
        self.authority = authority
        self.basePath = basePath
        self.isAWS = isAWS
    }

    /// Parses `http[s]://HOST[:PORT][/PATH]`.
    init(parsing url: String) throws {
        let lower = url.lowercased()
        let scheme: String
        if lower.hasPrefix("http://") {
            scheme = "http"
        } else if lower.hasPrefix("https://") {
            scheme = "https"
        } else {
            throw ObjectStoreError.configuration("the endpoint is not an http:// or https:// URL")
        }
        let rest = url.dropFirst(scheme.count + 3)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = String(rest[..<slash])
        var path = String(rest[slash...])
        while path.hasSuffix("/") {
            path.removeLast()
        }
        let forbidden: Set<Character> = ["@", "?", "#", " "]
        if authority.isEmpty || authority.contains(where: { forbidden.contains($0) }) || path.contains(where: { forbidden.contains($0) }) {
            // Not quoted: it may hold a user and password.
            throw ObjectStoreError.configuration("the endpoint must be http[s]://HOST[:PORT][/PATH], without user, query or fragment")
        }
        self.init(scheme: scheme, authority: authority, basePath: path, isAWS: false)
    }
}
