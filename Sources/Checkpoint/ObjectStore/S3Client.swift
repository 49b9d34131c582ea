#if canImport(Glibc)
import Glibc
#endif
import PGAlloc

/// A connection to the store: one libcurl handle, used by one thread at a
/// time. A worker thread owns one; other threads borrow one from the
/// client's pool.
final class S3Connection {
    let handle: CurlEasyHandle

    init() throws {
        handle = try CurlEasyHandle()
    }
}

/// One S3 request, before it is addressed and signed.
struct S3Request {
    /// The S3 operation, for messages: `GetObject`, `UploadPart`.
    var operation: String
    var method: String
    var bucket: String
    /// Nil for a request on the bucket.
    var key: String?
    /// The query in SigV4's canonical form: parameters sorted by name,
    /// `name=value` (even when the value is empty), values encoded.
    var query: String = ""
    var headers: [String] = []
    var body = CurlRequest.Body.none
    var destination: UnsafeMutableRawBufferPointer? = nil
}

/// Talks to one S3-compatible store: addresses, signs (through libcurl),
/// sends and retries requests, and turns refusals into `ObjectStoreError`.
///
/// Requests may be sent from several threads at once: each uses a
/// connection of its own (the caller's, or one borrowed from the pool).
final class S3Client: @unchecked Sendable {
    let configuration: S3Configuration
    let endpoint: S3Endpoint
    private let signing: CurlSigning?
    /// Connections not in use, kept for their open connections.
    private let idle = StateLock<[S3Connection]>([])
    /// Most connections kept idle.
    private static let idleLimit = 32

    init(configuration: S3Configuration) throws {
        self.configuration = configuration
        endpoint = try configuration.resolvedEndpoint()
        signing = configuration.credentials.map { CurlSigning(provider: "aws:amz:\(configuration.region):s3", credentials: $0) }
    }

    /// A client for `location`'s store: its configuration, or the
    /// environment's.
    static func reaching(_ location: ObjectLocation) throws -> S3Client {
        try S3Client(configuration: location.configuration ?? S3Configuration.fromEnvironment())
    }

    // MARK: Addressing

    /// Whether requests for `bucket` name it in the host.
    private func isVirtualHosted(_ bucket: String) -> Bool {
        switch configuration.addressing {
        case .path: return false
        case .virtualHosted: return true
        case .automatic:
            // A bucket name with dots breaks TLS certificate matching; one
            // with upper case or `_` is no DNS label.
            return endpoint.isAWS && bucket.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
        }
    }

    /// The URL of a request: its path percent-encoded as SigV4 wants it
    /// (libcurl signs the path as given).
    func url(bucket: String, key: String?, query: String) -> String {
        var url = "\(endpoint.scheme)://"
        if isVirtualHosted(bucket) {
            url += "\(bucket).\(endpoint.authority)\(endpoint.basePath)/"
        } else {
            url += "\(endpoint.authority)\(endpoint.basePath)/\(bucket)"
            if key != nil {
                url += "/"
            }
        }
        if let key {
            url += S3Client.percentEncode(key, keepSlash: true)
        }
        if !query.isEmpty {
            url += "?" + query
        }
        return url
    }

    /// Every byte but `A-Z a-z 0-9 - _ . ~` (and `/`, in a path) as `%XX`.
    static func percentEncode(_ text: String, keepSlash: Bool) -> String {
        let hexDigits = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for b in text.utf8 {
            let unreserved =
                (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x5F || b == 0x2E
                || b == 0x7E || (keepSlash && b == 0x2F)
            if unreserved {
                out.append(b)
            } else {
                out += [0x25, hexDigits[Int(b >> 4)], hexDigits[Int(b & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: Sending

    /// Runs `body` with a connection borrowed from the pool.
    func withConnection<T>(_ body: (S3Connection) throws -> T) throws -> T {
        let connection = try idle.withLock { $0.popLast() } ?? S3Connection()
        defer {
            idle.withLock { pool in
                if pool.count < S3Client.idleLimit {
                    pool.append(connection)
                }
            }
        }
        return try body(connection)
    }

    /// Sends `request` until it gets an answer `accept` takes (by default
    /// a 2xx), trying again after transient failures as the retry policy
    /// says.
    ///
    /// - Throws: `ObjectStoreError` naming `request`'s object, the status
    ///   and the S3 error code.
    func send(
        _ request: S3Request, on connection: S3Connection? = nil, accept: (Int) -> Bool = { (200..<300).contains($0) }
    ) throws -> CurlResponse {
        if let connection {
            return try send(request, connection: connection, accept: accept)
        }
        return try withConnection { try send(request, connection: $0, accept: accept) }
    }

    private func send(_ request: S3Request, connection: S3Connection, accept: (Int) -> Bool) throws -> CurlResponse {
        let curlRequest = CurlRequest(
            method: request.method, url: url(bucket: request.bucket, key: request.key, query: request.query), headers: request.headers,
            body: request.body, destination: request.destination)
        let attempts = max(1, configuration.retry.maxAttempts)
        var attempt = 0
        while true {
            attempt += 1
            let failure: ObjectStoreError
            let transient: Bool
            do {
                let response = try connection.handle.perform(
                    curlRequest, signing: signing, connectTimeout: configuration.connectTimeout, stallTimeout: configuration.stallTimeout)
                if accept(response.status) {
                    return response
                }
                (failure, transient) = error(for: request, response: response, attempts: attempt)
            } catch {
                failure = ObjectStoreError(
                    error.isTransient ? .unavailable : .rejected, operation: request.operation, location: location(of: request),
                    detail: "no answer: \(error.message) (curl error \(error.code.rawValue))", attempts: attempt)
                transient = error.isTransient
            }
            if !transient || attempt >= attempts {
                throw failure
            }
            S3Client.sleep(seconds: configuration.retry.delay(after: attempt))
        }
    }

    /// `s3://BUCKET/KEY` or `s3://BUCKET`.
    func location(of request: S3Request) -> String {
        request.key.map { "s3://\(request.bucket)/\($0)" } ?? "s3://\(request.bucket)"
    }

    /// The error an answer means, and whether another attempt may help.
    func error(for request: S3Request, response: CurlResponse, attempts: Int) -> (ObjectStoreError, transient: Bool) {
        let document = S3XML(response.body)
        let code = document.value(of: "Code")
        var detail = document.value(of: "Message") ?? ""
        let status = response.status
        let kind: ObjectStoreError.Kind
        var transient = false
        let credentialCodes: Set<String> = [
            "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken", "ExpiredToken", "TokenRefreshRequired",
            "AuthorizationHeaderMalformed", "InvalidSecurity", "AllAccessDisabled",
        ]
        let transientCodes: Set<String> = ["SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling", "RequestLimitExceeded"]
        if status == 401 || status == 403 || code.map(credentialCodes.contains) == true {
            kind = .accessDenied
            if detail.isEmpty {
                detail = "access denied"
            }
            if signing == nil {
                detail += " (no credentials were given: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
            }
        } else if status == 429 || status >= 500 || code.map(transientCodes.contains) == true {
            kind = .unavailable
            transient = true
            if detail.isEmpty {
                detail = status == 429 || status == 503 ? "the store is throttling requests" : "the store failed"
            }
        } else if status == 404 {
            kind = .notFound
            if detail.isEmpty {
                detail = request.key == nil ? "no such bucket" : "no such key (or bucket)"
            }
        } else if status == 412 {
            kind = .changed
            detail = "the object was replaced while it was read (its ETag no longer matches)"
        } else {
            kind = .rejected
            if detail.isEmpty {
                detail = "unexpected answer"
            }
        }
        return (
            ObjectStoreError(
                kind, operation: request.operation, location: location(of: request), status: status, code: code, detail: detail,
                attempts: attempts),
            transient
        )
    }

    static func sleep(seconds: Double) {
        guard seconds > 0 else { return }
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR {
            request = remaining
        }
    }
}

extension S3Client {
    /// What a read learns of the object: its length and ETag.
    struct ObjectVersion {
        var length: UInt64
        var etag: String
    }

    /// Reads `destination.count` bytes of the object at `offset`, if its
    /// ETag is still `etag`.
    func getRange(
        bucket: String, key: String, offset: UInt64, into destination: UnsafeMutableRawBufferPointer, etag: String,
        objectLength: UInt64, on connection: S3Connection? = nil
    ) throws {
        guard destination.count > 0 else { return }
        let last = offset + UInt64(destination.count) - 1
        let request = S3Request(
            operation: "GetObject", method: "GET", bucket: bucket, key: key,
            headers: ["Range: bytes=\(offset)-\(last)", "If-Match: \(etag)"], destination: destination)
        let response = try send(request, on: connection)
        let whole = response.status == 200 && offset == 0 && UInt64(destination.count) == objectLength
        if response.status == 206 {
            let range = S3Client.contentRange(response.header("content-range"))
            if range?.first != offset || range?.last != last || range?.total != objectLength {
                throw protocolError(request, "asked for bytes \(offset)-\(last) of \(objectLength), got \(response.header("content-range") ?? "no Content-Range")")
            }
        } else if !whole {
            throw protocolError(request, "asked for bytes \(offset)-\(last), got HTTP \(response.status) without the range")
        }
        if response.received != destination.count {
            throw protocolError(request, "asked for \(destination.count) bytes, got \(response.received)")
        }
    }

    /// Reads the last `count` bytes of the object (all of it if it is
    /// shorter), learning its length and ETag.
    func getSuffix(bucket: String, key: String, count: Int) throws -> (version: ObjectVersion, offset: UInt64, bytes: [UInt8]) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 16)
        defer { buffer.deallocate() }
        let request = S3Request(
            operation: "GetObject", method: "GET", bucket: bucket, key: key, headers: ["Range: bytes=-\(count)"], destination: buffer)
        // 416: the object is empty.
        let response = try send(request, accept: { (200..<300).contains($0) || $0 == 416 })
        if response.status == 416 {
            let version = try head(bucket: bucket, key: key)
            return (version, 0, [])
        }
        guard let etag = response.header("etag") else {
            throw protocolError(request, "the answer has no ETag")
        }
        let bytes = Array(UnsafeRawBufferPointer(rebasing: buffer[..<response.received]))
        if response.status == 206 {
            guard let range = S3Client.contentRange(response.header("content-range")), range.last + 1 == range.total,
                range.last - range.first + 1 == UInt64(bytes.count)
            else {
                throw protocolError(request, "asked for the last \(count) bytes, got \(response.header("content-range") ?? "no Content-Range")")
            }
            return (ObjectVersion(length: range.total, etag: etag), range.first, bytes)
        }
        // 200: the whole object.
        return (ObjectVersion(length: UInt64(bytes.count), etag: etag), 0, bytes)
    }

    /// The object's length and ETag (HeadObject).
    func head(bucket: String, key: String) throws -> ObjectVersion {
        let request = S3Request(operation: "HeadObject", method: "HEAD", bucket: bucket, key: key)
        let response = try send(request)
        guard let etag = response.header("etag"), let length = response.header("content-length").flatMap({ UInt64($0) }) else {
            throw protocolError(request, "the answer has no ETag or Content-Length")
        }
        return ObjectVersion(length: length, etag: etag)
    }

    /// `bytes FIRST-LAST/TOTAL`.
    static func contentRange(_ value: String?) -> (first: UInt64, last: UInt64, total: UInt64)? {
        guard let value, value.hasPrefix("bytes ") else { return nil }
        let parts = value.dropFirst(6).split(whereSeparator: { $0 == "-" || $0 == "/" })
        guard parts.count == 3, let first = UInt64(parts[0]), let last = UInt64(parts[1]), let total = UInt64(parts[2]), first <= last,
            last < total
        else { return nil }
        return (first, last, total)
    }

    /// An answer that breaks the protocol.
    func protocolError(_ request: S3Request, _ detail: String) -> ObjectStoreError {
        ObjectStoreError(.rejected, operation: request.operation, location: location(of: request), detail: detail)
    }
}
