#if canImport(Glibc)
import Glibc
#endif
import CCurl

/// libcurl's process-wide set-up, done once before the first handle.
enum CurlLibrary {
    /// Whether `curl_global_init` succeeded.
    static let initialized: Bool = curl_global_init(Int(CURL_GLOBAL_ALL)) == CURLE_OK
}

/// One HTTP request as libcurl sends it: method, URL, headers and body.
/// Signing is libcurl's (`CURLOPT_AWS_SIGV4`), from `signing`.
struct CurlRequest {
    enum Body {
        case none
        /// Sent with a read callback (`CURLOPT_UPLOAD`, a PUT); the memory
        /// must stay valid during `perform`.
        case upload(UnsafeRawBufferPointer)
        /// Sent as POST fields (a POST), with an explicit Content-Type.
        case post([UInt8], contentType: String)
    }

    var method: String
    var url: String
    /// Header lines, `Name: value`; every one is signed.
    var headers: [String] = []
    var body = Body.none
    /// Where a 2xx answer's body goes; nil: into the response.
    var destination: UnsafeMutableRawBufferPointer? = nil
}

/// What came back: the status, the headers of the final answer (not of a
/// `100 Continue`), and the body (an error body, or a small document;
/// bytes that went to the request's destination are only counted).
struct CurlResponse {
    var status: Int
    /// Names in lower case.
    var headers: [(name: String, value: String)]
    var body: [UInt8]
    /// Bytes written to the request's destination.
    var received: Int

    func header(_ name: String) -> String? {
        headers.last(where: { $0.name == name })?.value
    }
}

/// How requests are signed.
struct CurlSigning {
    /// `aws:amz:REGION:s3`.
    var provider: String
    var credentials: S3Credentials
}

/// A transfer that got no HTTP answer: libcurl's code and message.
struct CurlTransportError: Error {
    var code: CURLcode
    var message: String

    /// Errors worth another attempt: the connection was refused, broken,
    /// cut short or stalled.
    var isTransient: Bool {
        let transient: Set<UInt32> = [
            CURLE_COULDNT_RESOLVE_HOST.rawValue, CURLE_COULDNT_CONNECT.rawValue, CURLE_HTTP2.rawValue, CURLE_PARTIAL_FILE.rawValue,
            CURLE_OPERATION_TIMEDOUT.rawValue, CURLE_SSL_CONNECT_ERROR.rawValue, CURLE_GOT_NOTHING.rawValue,
            CURLE_SEND_ERROR.rawValue, CURLE_RECV_ERROR.rawValue, CURLE_HTTP2_STREAM.rawValue,
        ]
        return transient.contains(code.rawValue)
    }
}

/// The state one transfer's callbacks share, reached through libcurl's
/// user-data pointers.
private final class Transfer {
    var headers: [(name: String, value: String)] = []
    var status = 0
    var body: [UInt8] = []
    var destination: UnsafeMutableRawBufferPointer?
    var received = 0
    /// Set when the answer has more bytes than the destination holds.
    var overflow = false
    var upload: UnsafeRawBufferPointer?
    var uploaded = 0

    /// Error bodies are kept up to this many bytes.
    static let bodyLimit = 1 << 20

    init(destination: UnsafeMutableRawBufferPointer?, upload: UnsafeRawBufferPointer?) {
        self.destination = destination
        self.upload = upload
    }

    func header(_ line: UnsafeRawBufferPointer) {
        // Without the line end (bytes: "\r\n" is one Character).
        var count = line.count
        while count > 0 && (line[count - 1] == 0x0A || line[count - 1] == 0x0D) {
            count -= 1
        }
        let text = String(decoding: line[..<count], as: UTF8.self)
        if text.hasPrefix("HTTP/") {
            // A new answer (after `100 Continue`, or a redirect): its
            // headers replace the previous one's.
            headers = []
            let parts = text.split(separator: " ", maxSplits: 2)
            status = parts.count >= 2 ? Int(parts[1]) ?? 0 : 0
            return
        }
        guard let colon = text.firstIndex(of: ":") else { return }
        let name = text[..<colon].lowercased()
        let value = text[text.index(after: colon)...].drop(while: { $0 == " " || $0 == "\t" })
        headers.append((name, String(value)))
    }

    /// Takes a piece of the body; false to stop the transfer.
    func write(_ piece: UnsafeRawBufferPointer) -> Bool {
        if let destination, (200..<300).contains(status) {
            guard piece.count <= destination.count - received else {
                overflow = true
                return false
            }
            if let base = piece.baseAddress, piece.count > 0 {
                (destination.baseAddress! + received).copyMemory(from: base, byteCount: piece.count)
            }
            received += piece.count
            return true
        }
        if body.count < Transfer.bodyLimit {
            body.append(contentsOf: piece.prefix(Transfer.bodyLimit - body.count))
        }
        return true
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard let upload else { return 0 }
        let n = min(buffer.count, upload.count - uploaded)
        if n > 0 {
            buffer.baseAddress!.copyMemory(from: upload.baseAddress! + uploaded, byteCount: n)
        }
        uploaded += n
        return n
    }

    func seek(to offset: Int64) -> Bool {
        guard let upload, offset >= 0, offset <= Int64(upload.count) else { return false }
        uploaded = Int(offset)
        return true
    }
}

/// One libcurl easy handle, owned: cleaned up when dropped. A handle is
/// used by one thread at a time; it keeps its connections open between
/// requests (`curl_easy_reset` keeps them).
struct CurlEasyHandle: ~Copyable {
    private let handle: UnsafeMutableRawPointer
    /// libcurl's message about the last failed transfer.
    private let errorBuffer: UnsafeMutablePointer<CChar>

    init() throws(ObjectStoreError) {
        guard CurlLibrary.initialized, let h = curl_easy_init() else {
            throw ObjectStoreError.configuration("libcurl could not be initialized (curl_global_init or curl_easy_init failed)")
        }
        handle = h
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    /// Sends `request` and waits for the whole answer.
    ///
    /// - Throws: `CurlTransportError` when no complete answer came.
    func perform(_ request: CurlRequest, signing: CurlSigning?, connectTimeout: Int, stallTimeout: Int) throws(CurlTransportError) -> CurlResponse {
        curl_easy_reset(handle)
        var upload: UnsafeRawBufferPointer?
        if case .upload(let bytes) = request.body {
            upload = bytes
        }
        let transfer = Transfer(destination: request.destination, upload: upload)
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        errorBuffer[0] = 0
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }

        pg_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        pg_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT, connectTimeout)
        pg_curl_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, 1)
        pg_curl_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, stallTimeout)
        pg_curl_setopt_long(handle, CURLOPT_TCP_KEEPALIVE, 1)
        request.url.withCString { _ = pg_curl_setopt_pointer(handle, CURLOPT_URL, $0) }
        if let signing {
            signing.provider.withCString { _ = pg_curl_setopt_pointer(handle, CURLOPT_AWS_SIGV4, $0) }
            signing.credentials.accessKeyID.withCString { _ = pg_curl_setopt_pointer(handle, CURLOPT_USERNAME, $0) }
            signing.credentials.secretAccessKey.withCString { _ = pg_curl_setopt_pointer(handle, CURLOPT_PASSWORD, $0) }
        }
        pg_curl_setopt_write_function(handle, CURLOPT_HEADERFUNCTION) { data, size, count, user in
            let transfer = Unmanaged<Transfer>.fromOpaque(user!).takeUnretainedValue()
            transfer.header(UnsafeRawBufferPointer(start: data, count: size * count))
            return size * count
        }
        pg_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, context)
        pg_curl_setopt_write_function(handle, CURLOPT_WRITEFUNCTION) { data, size, count, user in
            let transfer = Unmanaged<Transfer>.fromOpaque(user!).takeUnretainedValue()
            return transfer.write(UnsafeRawBufferPointer(start: data, count: size * count)) ? size * count : 0
        }
        pg_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, context)
        pg_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer)

        var headers = request.headers
        if request.method == "HEAD" {
            pg_curl_setopt_long(handle, CURLOPT_NOBODY, 1)
        }
        switch request.body {
        case .none:
            if request.method == "PUT" {
                // An empty PUT: Content-Length 0.
                pg_curl_setopt_long(handle, CURLOPT_UPLOAD, 1)
                pg_curl_setopt_offset(handle, CURLOPT_INFILESIZE_LARGE, 0)
            } else if request.method != "GET" && request.method != "HEAD" {
                request.method.withCString { _ = pg_curl_setopt_pointer(handle, CURLOPT_CUSTOMREQUEST, $0) }
            }
        case .upload(let bytes):
            headers.append("Content-Type: application/octet-stream")
            pg_curl_setopt_long(handle, CURLOPT_UPLOAD, 1)
            pg_curl_setopt_read_function(handle) { buffer, size, count, user in
                let transfer = Unmanaged<Transfer>.fromOpaque(user!).takeUnretainedValue()
                return transfer.read(into: UnsafeMutableRawBufferPointer(start: buffer, count: size * count))
            }
            pg_curl_setopt_pointer(handle, CURLOPT_READDATA, context)
            // Lets libcurl rewind the body when it sends it again on a new
            // connection.
            pg_curl_setopt_seek_function(handle) { user, offset, origin in
                let transfer = Unmanaged<Transfer>.fromOpaque(user!).takeUnretainedValue()
                return origin == SEEK_SET && transfer.seek(to: Int64(offset)) ? CURL_SEEKFUNC_OK : CURL_SEEKFUNC_CANTSEEK
            }
            pg_curl_setopt_pointer(handle, CURLOPT_SEEKDATA, context)
            pg_curl_setopt_offset(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(bytes.count))
            if request.method != "PUT" {
                request.method.withCString { _ = pg_curl_setopt_pointer(handle, CURLOPT_CUSTOMREQUEST, $0) }
            }
        case .post(_, let contentType):
            // An explicit type: with libcurl's default form type, some
            // servers parse the body as a form and lose it.
            headers.append("Content-Type: \(contentType)")
            if request.method != "POST" {
                request.method.withCString { _ = pg_curl_setopt_pointer(handle, CURLOPT_CUSTOMREQUEST, $0) }
            }
        }
        if let token = signing?.credentials.sessionToken {
            headers.append("x-amz-security-token: \(token)")
        }
        // libcurl 7.88 does not send the payload hash S3 requires; it signs
        // this header and uses its value as the payload hash.
        headers.append("x-amz-content-sha256: UNSIGNED-PAYLOAD")
        for line in headers {
            headerList = curl_slist_append(headerList, line)
        }
        pg_curl_setopt_pointer(handle, CURLOPT_HTTPHEADER, headerList)

        let code: CURLcode
        if case .post(let bytes, _) = request.body {
            code = bytes.withUnsafeBytes { raw in
                pg_curl_setopt_offset(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(raw.count))
                // An empty body still needs a valid pointer.
                pg_curl_setopt_pointer(handle, CURLOPT_POSTFIELDS, raw.baseAddress ?? UnsafeRawPointer(("" as StaticString).utf8Start))
                return curl_easy_perform(handle)
            }
        } else {
            code = curl_easy_perform(handle)
        }
        if transfer.overflow {
            throw CurlTransportError(code: CURLE_WRITE_ERROR, message: "the answer holds more bytes than asked for")
        }
        if code != CURLE_OK {
            let detail = String(cString: errorBuffer)
            let text = String(cString: curl_easy_strerror(code))
            throw CurlTransportError(code: code, message: detail.isEmpty ? text : "\(text): \(detail)")
        }
        var status = 0
        pg_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return CurlResponse(status: status, headers: transfer.headers, body: transfer.body, received: transfer.received)
    }
}
