/// Where a checkpoint comes from or goes to: one way to name it for every
/// operation (save, restore, lazy restore, verify, inspect).
///
/// A string literal is a path: `try file.save(to: "/var/lib/vm/mem.ckpt")`;
/// `CheckpointLocation.parse("s3://bucket/key")` names an object.
public enum CheckpointLocation: Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// A file. Read: a regular file, seekable (its trailer and index are
    /// read first). Written: atomically (a temporary file, fsync'd and
    /// renamed over the path).
    case path(String)
    /// An open descriptor, which stays the caller's, read or written from
    /// its current offset: a regular file is read as a file, a pipe or a
    /// socket as a stream (once, in order). Writing never seeks. `name`
    /// names it in messages.
    case descriptor(Int32, name: String)
    /// An object in an S3-compatible store. Read: with ranged GETs, pinned
    /// to the object's ETag. Written: by a multipart upload whose parts go
    /// out while the checkpoint is compressed; the object appears at the
    /// key only once the whole checkpoint is uploaded.
    case object(ObjectLocation)

    /// `s3://BUCKET/KEY` as an object (reached as the environment says),
    /// anything else as a path.
    ///
    /// - Throws: `CheckpointUsageError` for an `s3://` location without a
    ///   valid bucket and key.
    public static func parse(_ text: String) throws -> CheckpointLocation {
        if let object = try ObjectLocation.parse(text) {
            return .object(object)
        }
        return .path(text)
    }

    /// An open descriptor, named "descriptor N" in messages.
    public static func descriptor(_ fd: Int32) -> CheckpointLocation {
        .descriptor(fd, name: "descriptor \(fd)")
    }

    public init(stringLiteral path: String) {
        self = .path(path)
    }

    /// Standard input, as a checkpoint to read.
    public static let standardInput = CheckpointLocation.descriptor(0, name: "stdin")
    /// Standard output, as a checkpoint to write.
    public static let standardOutput = CheckpointLocation.descriptor(1, name: "stdout")

    /// How messages name it.
    public var description: String {
        switch self {
        case .path(let path): path
        case .descriptor(_, let name): name
        case .object(let object): object.description
        }
    }
}
