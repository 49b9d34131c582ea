/// Where a checkpoint comes from or goes to: one way to name it for every
/// operation (save, restore, verify, inspect).
///
/// A string literal is a path: `try file.save(to: "/var/lib/vm/mem.ckpt")`.
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
        }
    }
}
