/// `PRNT` (head, critical): the parent of an incremental checkpoint. Its
/// pages that are not stored are taken from the chain of parents (see
/// `REFS`); the parent is found by a path relative to this checkpoint and
/// recognised by its identity.
///
/// Payload: depth u32 (the links above this checkpoint, 1 for the child of
/// a full checkpoint), pathLength u32 (1 to 4096), the parent's identity
/// (32 bytes), the path (UTF-8, without a zero byte), then nothing.
public struct ParentRecord: Hashable, Sendable {
    /// Links above the checkpoint: its parent's depth plus one.
    public var depth: Int
    /// The parent's identity (its manifest digest).
    public var identity: CheckpointIdentity
    /// Where the parent is, relative to the directory of the checkpoint
    /// (or absolute).
    public var path: String

    public init(depth: Int, identity: CheckpointIdentity, path: String) {
        self.depth = depth
        self.identity = identity
        self.path = path
    }
}

enum ParentSection {
    static let depth = Field(0, 4, "depth")
    static let pathLength = Field(4, 4, "pathLength")
    static let identity = Field(8, 32, "identity")
    static let fixedLength = 40
    static let maxPathLength = 4096
    /// The longest chain a checkpoint may end: long enough for a save every
    /// minute for most of a day between flattenings, short enough that a
    /// restore opens a bounded number of files.
    public static let maxDepth = 1024

    static var maxLength: UInt64 { UInt64(fixedLength + maxPathLength) }

    static func encode(_ parent: ParentRecord) -> [UInt8] {
        precondition(
            (1...maxDepth).contains(parent.depth) && !parent.path.utf8.isEmpty && parent.path.utf8.count <= maxPathLength,
            "ParentSection: depth \(parent.depth), path of \(parent.path.utf8.count) bytes")
        var w = ByteWriter(capacity: fixedLength + parent.path.utf8.count)
        w.u32(UInt32(parent.depth), depth)
        w.u32(UInt32(parent.path.utf8.count), pathLength)
        w.field(identity)
        w.raw(parent.identity.bytes)
        w.raw(parent.path.utf8)
        return w.bytes
    }

    static func decode(_ bytes: [UInt8], offset: UInt64) throws(CheckpointError) -> ParentRecord {
        let section = CheckpointSection.section(.parent)
        var r = ByteReader(bytes, base: offset, section: section)
        let depthValue = try r.u32(depth)
        guard (1...UInt32(maxDepth)).contains(depthValue) else {
            throw .field(r, depth, expected: "1 to \(maxDepth)", found: depthValue)
        }
        let length = try r.u32(pathLength)
        guard (1...UInt32(maxPathLength)).contains(length) else {
            throw .field(r, pathLength, expected: "1 to \(maxPathLength)", found: length)
        }
        guard bytes.count == fixedLength + Int(length) else {
            throw .field(section, offset, "length", expected: "\(fixedLength + Int(length)) (40 and the path)", found: bytes.count)
        }
        let digest = Array(try r.raw(CheckpointIdentity.length))
        let pathBytes = Array(try r.raw(Int(length)))
        guard let path = String(validating: pathBytes, as: UTF8.self), !pathBytes.contains(0) else {
            throw .field(section, offset + UInt64(fixedLength), "path", expected: "UTF-8 without a zero byte", found: hexBytes(pathBytes.prefix(16)))
        }
        return ParentRecord(depth: Int(depthValue), identity: CheckpointIdentity(bytes: digest), path: path)
    }
}
