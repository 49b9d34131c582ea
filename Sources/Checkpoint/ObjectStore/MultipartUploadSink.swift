import PGAlloc

/// Writes a checkpoint to an object with a multipart upload whose parts go
/// out while the rest is still being compressed.
///
/// Bytes fill a part buffer; a full part is handed to a small pool of
/// uploader threads (`maxConcurrentRequests`, each with a connection of its
/// own) and the next part fills meanwhile. At most that many parts are in
/// flight plus the one filling: when all are taken, `write` waits for the
/// oldest upload, which slows compression down to the network's pace
/// instead of holding more memory.
///
/// The upload starts (CreateMultipartUpload) when the first part is full;
/// a checkpoint smaller than one part is sent by one PutObject at commit.
/// `commit()` uploads the last part, waits for every part and completes
/// the upload: only then does the object appear at the key, whole.
/// `abandon()`, and a sink dropped without `commit()`, wait for the parts
/// in flight and abort the upload, so that neither an object nor an
/// incomplete upload is left behind (unless the store cannot be reached at
/// all).
final class MultipartUploadSink: CheckpointSink {
    private struct UploadedPart {
        var number: Int
        var etag: String
        var buffer: PageBuffer
    }

    /// An uploader thread's context: its own connection.
    private final class Uploader {
        let connection: S3Connection
        init() throws { connection = try S3Connection() }
    }

    let location: ObjectLocation
    private let client: S3Client
    private var uploadID: String?
    private var queue: WorkQueue<Uploader, UploadedPart>?
    /// The part being filled, and its fill.
    private var part: PageBuffer?
    private var filled = 0
    /// Parts handed to the uploaders.
    private var partsSubmitted = 0
    /// Uploaded parts, in order: number and ETag.
    private var uploaded: [(number: Int, etag: String)] = []
    private var freeBuffers: [PageBuffer] = []
    private var done = false

    /// S3 takes at most this many parts.
    static let maxParts = 10_000

    init(_ location: ObjectLocation) throws {
        self.location = location
        client = try S3Client.reaching(location)
        if client.configuration.partSize < S3Configuration.minimumPartSize {
            throw CheckpointUsageError(
                "\(location): a part size of \(client.configuration.partSize) bytes is below S3's minimum of \(S3Configuration.minimumPartSize)")
        }
    }

    deinit {
        if !done {
            abandon()
        }
    }

    /// The size of part `number` (from 1): the configured size for the
    /// first 1000 parts, doubled every 1000 parts after, at most 5 GiB.
    func partSize(_ number: Int) -> Int {
        let doublings = min((number - 1) / 1000, 10)
        return min(client.configuration.partSize << doublings, 5 << 30)
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        var copied = 0
        while copied < bytes.count {
            if part == nil {
                part = try takeBuffer(capacity: partSize(partsSubmitted + 1))
                filled = 0
            }
            let buffer = part!
            let capacity = partSize(partsSubmitted + 1)
            let n = min(bytes.count - copied, capacity - filled)
            (buffer.bytes.baseAddress! + filled).copyMemory(from: bytes.baseAddress! + copied, byteCount: n)
            filled += n
            copied += n
            if filled == capacity {
                try submitPart()
            }
        }
    }

    func startDurability() throws {}

    func commit() throws {
        precondition(!done, "MultipartUploadSink.commit: \(location) was already committed or abandoned")
        if uploadID == nil {
            // Everything fits in one part: one PutObject.
            let bytes = part.map { UnsafeRawBufferPointer(rebasing: $0.bytes[..<filled]) } ?? UnsafeRawBufferPointer(start: nil, count: 0)
            _ = try client.send(
                S3Request(operation: "PutObject", method: "PUT", bucket: location.bucket, key: location.key, body: .upload(bytes)))
            done = true
            return
        }
        if filled > 0 {
            try submitPart()
        }
        while let result = try queue!.nextResult() {
            collect(result)
        }
        try complete()
        done = true
        queue?.shutDown()
    }

    func abandon() {
        guard !done else { return }
        done = true
        if let queue {
            _ = queue.drain()
            queue.shutDown()
        }
        if let uploadID {
            let request = S3Request(
                operation: "AbortMultipartUpload", method: "DELETE", bucket: location.bucket, key: location.key,
                query: "uploadId=\(S3Client.percentEncode(uploadID, keepSlash: false))")
            // Nothing more can be done if the store cannot be reached: the
            // store's lifecycle rules must clean up then.
            _ = try? client.send(request, accept: { (200..<300).contains($0) || $0 == 404 })
        }
    }

    // MARK: Parts

    /// A free part buffer of at least `capacity` bytes, waiting for an
    /// upload to finish when all are in flight.
    private func takeBuffer(capacity: Int) throws -> PageBuffer {
        freeBuffers.removeAll { $0.bytes.count < capacity }
        if let buffer = freeBuffers.popLast() {
            return buffer
        }
        return try PageBuffer(capacity: capacity)
    }

    /// Hands the filled part to an uploader; starts the upload first if
    /// this is the first part.
    private func submitPart() throws {
        if uploadID == nil {
            try start()
        }
        let queue = self.queue!
        while queue.isFull {
            collect(try queue.nextResult()!)
        }
        guard partsSubmitted < MultipartUploadSink.maxParts else {
            throw ObjectStoreError(
                .rejected, operation: "UploadPart", location: location.description,
                detail: "the checkpoint needs more than \(MultipartUploadSink.maxParts) parts (raise S3Configuration.partSize)")
        }
        partsSubmitted += 1
        let number = partsSubmitted
        let buffer = part!
        let length = filled
        part = nil
        filled = 0
        let request = S3Request(
            operation: "UploadPart", method: "PUT", bucket: location.bucket, key: location.key,
            query: "partNumber=\(number)&uploadId=\(S3Client.percentEncode(uploadID!, keepSlash: false))",
            body: .upload(UnsafeRawBufferPointer(rebasing: buffer.bytes[..<length])))
        let client = self.client
        queue.submit { uploader in
            let response = try client.send(request, on: uploader.connection)
            guard let etag = response.header("etag") else {
                throw client.protocolError(request, "the answer to part \(number) has no ETag")
            }
            return UploadedPart(number: number, etag: etag, buffer: buffer)
        }
    }

    private func collect(_ result: UploadedPart) {
        uploaded.append((result.number, result.etag))
        freeBuffers.append(result.buffer)
    }

    /// CreateMultipartUpload, and the uploader threads.
    private func start() throws {
        let response = try client.send(
            S3Request(
                operation: "CreateMultipartUpload", method: "POST", bucket: location.bucket, key: location.key, query: "uploads=",
                body: .post([], contentType: "application/octet-stream")))
        guard let id = S3XML(response.body).value(of: "UploadId"), !id.isEmpty else {
            throw ObjectStoreError(
                .rejected, operation: "CreateMultipartUpload", location: location.description, status: response.status,
                detail: "the answer has no UploadId")
        }
        uploadID = id
        let threads = max(1, client.configuration.maxConcurrentRequests)
        queue = try WorkQueue(threads: threads, maxInFlight: threads, name: "pgsnap-upload") { try Uploader() }
    }

    /// CompleteMultipartUpload with every part, in order.
    private func complete() throws {
        var xml = "<CompleteMultipartUpload>"
        for part in uploaded {
            xml += "<Part><PartNumber>\(part.number)</PartNumber><ETag>\(S3XML.escape(part.etag))</ETag></Part>"
        }
        xml += "</CompleteMultipartUpload>"
        let request = S3Request(
            operation: "CompleteMultipartUpload", method: "POST", bucket: location.bucket, key: location.key,
            query: "uploadId=\(S3Client.percentEncode(uploadID!, keepSlash: false))", body: .post(Array(xml.utf8), contentType: "application/xml"))
        let attempts = max(1, client.configuration.retry.maxAttempts)
        var attempt = 0
        while true {
            attempt += 1
            let response = try client.send(request)
            // S3 may answer 200 and report a failure in the body.
            let document = S3XML(response.body)
            guard document.isError else { return }
            let (error, transient) = client.error(for: request, response: response, attempts: attempt)
            if !transient || attempt >= attempts {
                throw error
            }
            S3Client.sleep(seconds: client.configuration.retry.delay(after: attempt))
        }
    }
}
