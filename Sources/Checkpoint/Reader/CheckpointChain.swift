#if canImport(Glibc)
import Glibc
#endif
import PGAlloc

/// Why the parents of an incremental checkpoint cannot be used.
public struct ChainError: Error, CustomStringConvertible, Sendable {
    public enum Reason: Hashable, Sendable {
        /// No file was found where the chain says the parent is, nor in the
        /// directories searched.
        case parentMissing
        /// A file was found, but its identity is not the one recorded: it
        /// changed (or is another checkpoint) since the child was saved.
        case parentChanged
        /// The chain comes back to a checkpoint already in it.
        case cycle
        /// The parent is not a checkpoint this reader accepts (its own
        /// error is in the detail).
        case parentInvalid
        /// The parent cannot be one: it has no page hashes (saved by an
        /// older pgsnap, or a version-1 checkpoint), or the chain would be
        /// too long.
        case notAParent
    }

    public var reason: Reason
    /// The link at fault: 1 for the parent, 2 for its parent, and so on.
    public var link: Int
    public var detail: String

    public init(_ reason: Reason, link: Int, _ detail: String) {
        self.reason = reason
        self.link = link
        self.detail = detail
    }

    public var description: String { "link \(link) of the chain: \(detail)" }
}

/// The parents of a checkpoint, each found, opened and recognised by its
/// identity: `links[0]` is link 1 (the parent), `links[1]` link 2, and so
/// on to the full checkpoint that ends the chain.
final class CheckpointChain: Sendable {
    struct Link: Sendable {
        let input: RandomAccessInput
        /// Everything but the frames; the segment table is checked, not
        /// kept.
        let metadata: CheckpointMetadata
        let identity: CheckpointIdentity
        /// Where it was found.
        let path: String
    }

    let links: [Link]

    init(links: [Link]) {
        self.links = links
    }

    /// Link `n` (1 or more).
    func link(_ n: Int) -> Link { links[n - 1] }

    /// Finds the ancestors of a checkpoint whose `PRNT` is `parent`. The
    /// checkpoint is at `childPath` (nil for a stream: relative paths are
    /// then taken from the working directory); each parent is looked for at
    /// its recorded path, relative to its child's directory, then by its
    /// file name in each of `searchPaths`.
    static func resolve(
        parent: ParentRecord, childPath: String?, searchPaths: [String], checkPageHashes: Bool = false
    ) throws -> CheckpointChain {
        var visited = Set<FileKey>()
        if let childPath, let key = FileKey(path: childPath) {
            visited.insert(key)
        }
        var links: [Link] = []
        var record = parent
        var childName = childPath ?? "the checkpoint"
        var childDirectory = childPath.map(directory(of:))
        while true {
            let n = links.count + 1
            let link = try find(record, link: n, childName: childName, childDirectory: childDirectory, searchPaths: searchPaths,
                                visited: &visited, checkPageHashes: checkPageHashes)
            let depth = link.metadata.parent?.depth ?? 0
            if depth != record.depth - 1 {
                throw ChainError(
                    .parentChanged, link: n,
                    "\(link.path) has \(depth) links above it, \(childName) records \(record.depth - 1)")
            }
            if link.metadata.pageHashes == nil {
                throw ChainError(.notAParent, link: n, "\(link.path) has no page hashes (PHSH): it cannot be a parent")
            }
            links.append(link)
            guard let next = link.metadata.parent else { break }
            record = next
            childName = link.path
            childDirectory = directory(of: link.path)
        }
        return CheckpointChain(links: links)
    }

    /// Opens the checkpoint at `path` as the parent of a save: link 1 is
    /// it, its own ancestors follow.
    static func openAsParent(_ path: String, searchPaths: [String]) throws -> CheckpointChain {
        var visited = Set<FileKey>()
        let first = try open(path, link: 1, visited: &visited, checkPageHashes: true)
        guard first.metadata.header.version >= 2, first.metadata.pageHashes != nil else {
            throw ChainError(.notAParent, link: 1, "\(path) has no page hashes (PHSH): save it again to use it as a parent")
        }
        if (first.metadata.parent?.depth ?? 0) >= ParentSection.maxDepth {
            throw ChainError(.notAParent, link: 1, "\(path) ends a chain of \(ParentSection.maxDepth) links already: flatten it first")
        }
        guard let grandparent = first.metadata.parent else {
            return CheckpointChain(links: [first])
        }
        let rest = try resolve(parent: grandparent, childPath: path, searchPaths: searchPaths, checkPageHashes: true)
        return CheckpointChain(links: [first] + rest.links)
    }

    /// The first candidate whose identity is the recorded one.
    private static func find(
        _ record: ParentRecord, link n: Int, childName: String, childDirectory: String?, searchPaths: [String],
        visited: inout Set<FileKey>, checkPageHashes: Bool
    ) throws -> Link {
        var candidates: [String] = []
        if record.path.hasPrefix("/") {
            candidates.append(record.path)
        } else {
            candidates.append(childDirectory.map { join($0, record.path) } ?? record.path)
        }
        let name = String(record.path.split(separator: "/").last ?? Substring(record.path))
        for dir in searchPaths {
            let c = join(dir, name)
            if !candidates.contains(c) {
                candidates.append(c)
            }
        }
        var mismatches: [String] = []
        for path in candidates {
            guard let key = FileKey(path: path) else { continue }
            if visited.contains(key) {
                throw ChainError(.cycle, link: n, "\(path), the parent \(childName) names, is already a link of this chain (a cycle)")
            }
            let link = try open(path, link: n, visited: &visited, checkPageHashes: checkPageHashes)
            if link.identity == record.identity {
                return link
            }
            visited.remove(key)
            mismatches.append("\(path) is \(link.identity.description.prefix(16))…")
        }
        if !mismatches.isEmpty {
            throw ChainError(
                .parentChanged, link: n,
                "\(childName) needs the parent \(record.identity.description.prefix(16))…, but \(mismatches.joined(separator: "; ")): the parent changed since \(childName) was saved")
        }
        let searched = searchPaths.isEmpty ? "" : ", nor as \(name) in \(searchPaths.joined(separator: ", "))"
        throw ChainError(
            .parentMissing, link: n,
            "the parent of \(childName) is not at \(candidates[0])\(searched) (give its directory with --parent-dir)")
    }

    /// Opens and reads the checkpoint at `path` (everything but frames),
    /// and computes its identity.
    private static func open(_ path: String, link n: Int, visited: inout Set<FileKey>, checkPageHashes: Bool) throws -> Link {
        do {
            guard case .random(let file) = try OpenedInput.open(.path(path)) else {
                throw ChainError(.parentInvalid, link: n, "\(path) is not a regular file")
            }
            var scanner = CheckpointScanner(input: SequentialReader(.random(file), bufferSize: 64 << 10))
            scanner.keepSegments = false
            scanner.checkPageHashes = checkPageHashes
            scanner.memoryLimit = CheckpointFormat.maxFileSize
            let metadata = try scanner.scanWithoutFrames()
            guard metadata.header.version >= 2 else {
                throw ChainError(.notAParent, link: n, "\(path) is a version-1 checkpoint: it cannot be a parent")
            }
            if let key = FileKey(path: path) {
                visited.insert(key)
            }
            return Link(input: file, metadata: metadata, identity: try CheckpointReader.identity(of: file, metadata: metadata), path: path)
        } catch let error as CheckpointError {
            throw ChainError(.parentInvalid, link: n, "\(path): \(error)")
        }
    }

    private static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    private static func join(_ dir: String, _ name: String) -> String {
        dir.hasSuffix("/") ? dir + name : dir + "/" + name
    }
}

/// A file's device and inode: how a chain recognises a file it has opened
/// already, whatever path led to it.
private struct FileKey: Hashable {
    let device: UInt64
    let inode: UInt64

    /// The key of the file at `path`, or nil if there is none.
    init?(path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
    }
}
