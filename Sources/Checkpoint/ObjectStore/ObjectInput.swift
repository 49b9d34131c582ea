/// A checkpoint in an object store, read with ranged GETs.
///
/// Opening it fetches the object's last bytes in one request (its length,
/// its ETag, and the trailer, index and tail sections of most
/// checkpoints), kept in memory. Every later read is a ranged GET carrying
/// `If-Match` with that ETag: an object replaced meanwhile fails the read
/// (`ObjectStoreError.Kind.changed`) rather than mixing two checkpoints.
///
/// Reads may come from several threads at once (the lazy loader's, the
/// read-ahead's): each borrows a connection of its own.
final class ObjectInput: RandomAccessInput, @unchecked Sendable {
    let name: String
    let length: UInt64
    /// The ETag every read is pinned to.
    let etag: String
    let location: ObjectLocation
    private let client: S3Client
    /// The object's bytes from `tailOffset` to its end.
    private let tail: [UInt8]
    private let tailOffset: UInt64

    init(_ location: ObjectLocation) throws {
        self.location = location
        name = location.description
        client = try S3Client.reaching(location)
        let suffix = try client.getSuffix(bucket: location.bucket, key: location.key, count: max(64 << 10, client.configuration.suffixLength))
        length = suffix.version.length
        etag = suffix.version.etag
        tail = suffix.bytes
        tailOffset = suffix.offset
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer, section: CheckpointSection) throws {
        let (end, overflow) = offset.addingReportingOverflow(UInt64(buffer.count))
        if overflow || end > length {
            throw CheckpointError(.truncated, section, offset: min(offset, length), "the object ends before \(buffer.count) bytes at \(offset)")
        }
        guard buffer.count > 0 else { return }
        // The part in the bytes fetched at open is copied; the rest read.
        var fetchedEnd = end
        if end > tailOffset {
            let from = max(offset, tailOffset)
            let count = Int(end - from)
            tail.withUnsafeBytes { bytes in
                let source = bytes.baseAddress! + Int(from - tailOffset)
                (buffer.baseAddress! + Int(from - offset)).copyMemory(from: source, byteCount: count)
            }
            fetchedEnd = from
        }
        if fetchedEnd > offset {
            try client.getRange(
                bucket: location.bucket, key: location.key, offset: offset,
                into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<Int(fetchedEnd - offset)]), etag: etag, objectLength: length)
        }
    }

    /// Blocks of the object are fetched ahead of a sequential reader, up to
    /// where the bytes fetched at open start.
    var readAheadPlan: ReadAheadPlan? {
        ReadAheadPlan(
            blockSize: max(1 << 20, client.configuration.readBlockSize),
            blocksInFlight: max(1, client.configuration.maxConcurrentRequests), end: tailOffset)
    }
}
