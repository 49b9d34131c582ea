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
/// on to the full checkpoint that ends the chain. Links are files or
/// objects of an S3-compatible store.
final class CheckpointChain: Sendable {
    struct Link: Sendable {
        let input: RandomAccessInput
        /// Everything but the frames; the segment table is checked, not
        /// kept.
        let metadata: CheckpointMetadata
        let identity: CheckpointIdentity
        /// Where it was found.
        let location: CheckpointLocation

        /// How messages name it.
        var path: String { location.description }
    }

    let links: [Link]

    init(links: [Link]) {
        self.links = links
    }

    /// Link `n` (1 or more).
    func link(_ n: Int) -> Link { links[n - 1] }

    /// Finds the ancestors of a checkpoint whose `PRNT` is `parent`, read
    /// from `child` (a stream's relative paths are taken from the working
    /// directory); each parent is looked for at its recorded path, relative
    /// to its child's directory (its key's "directory" for an object), then
    /// by its file name in each of `searchPaths` (directories, or
    /// `s3://BUCKET/PREFIX`). Every link is read with `keys`: opened with
    /// them if encrypted, and signed by a trusted signer if they require
    /// it.
    static func resolve(
        parent: ParentRecord, child: CheckpointLocation, searchPaths: [String], keys: CheckpointKeys, checkPageHashes: Bool = false
    ) throws -> CheckpointChain {
        var visited = Set<String>()
        if let key = LinkKey.of(child) {
            visited.insert(key)
        }
        var links: [Link] = []
        var record = parent
        var childLocation = child
        while true {
            let n = links.count + 1
            let link = try find(
                record, link: n, child: childLocation, searchPaths: searchPaths, visited: &visited, keys: keys, checkPageHashes: checkPageHashes)
            let depth = link.metadata.parent?.depth ?? 0
            if depth != record.depth - 1 {
                throw ChainError(
                    .parentChanged, link: n,
                    "\(link.path) has \(depth) links above it, \(childLocation) records \(record.depth - 1)")
            }
            if link.metadata.pageHashes == nil {
                throw ChainError(.notAParent, link: n, "\(link.path) has no page hashes (PHSH): it cannot be a parent")
            }
            links.append(link)
            guard let next = link.metadata.parent else { break }
            record = next
            childLocation = link.location
        }
        return CheckpointChain(links: links)
    }

    /// Opens the checkpoint at `location` as the parent of a save: link 1
    /// is it, its own ancestors follow; all read with `keys`.
    static func openAsParent(_ location: CheckpointLocation, searchPaths: [String], keys: CheckpointKeys) throws -> CheckpointChain {
        var visited = Set<String>()
        let first = try open(location, link: 1, visited: &visited, keys: keys, checkPageHashes: true, keepReferences: true)
        guard first.metadata.header.version >= 2, first.metadata.pageHashes != nil else {
            throw ChainError(.notAParent, link: 1, "\(location) has no page hashes (PHSH): save it again to use it as a parent")
        }
        if (first.metadata.parent?.depth ?? 0) >= ParentSection.maxDepth {
            throw ChainError(.notAParent, link: 1, "\(location) ends a chain of \(ParentSection.maxDepth) links already: flatten it first")
        }
        guard let grandparent = first.metadata.parent else {
            return CheckpointChain(links: [first])
        }
        let rest = try resolve(parent: grandparent, child: location, searchPaths: searchPaths, keys: keys, checkPageHashes: true)
        return CheckpointChain(links: [first] + rest.links)
    }

    /// Where a recorded path leads from `child`, then by name in each
    /// search path.
    static func candidates(for path: String, child: CheckpointLocation, searchPaths: [String]) throws -> [CheckpointLocation] {
        var out: [CheckpointLocation] = []
        if let object = try ObjectLocation.parse(path) {
            out.append(.object(object))
        } else if path.hasPrefix("/") {
            out.append(.path(path))
        } else {
            switch child {
            case .path(let childPath):
                out.append(.path(LocationPaths.join(LocationPaths.directory(of: childPath), path)))
            case .object(let object):
                let key = LocationPaths.normalized(LocationPaths.join(LocationPaths.directory(of: object.key), path))
                if let key, let located = try? ObjectLocation(bucket: object.bucket, key: key, configuration: object.configuration) {
                    out.append(.object(located))
                }
            case .descriptor:
                out.append(.path(path))
            }
        }
        let name = String(path.split(separator: "/").last ?? Substring(path))
        for dir in searchPaths {
            let c = try CheckpointLocation.parse(LocationPaths.join(dir, name))
            if !out.contains(c) {
                out.append(c)
            }
        }
        return out
    }

    /// The first candidate whose identity is the recorded one. A candidate
    /// the keys refuse (its signature, its encryption) is passed over; if
    /// no other one is the parent, the first refusal is thrown: the keys,
    /// not the chain, are at fault.
    private static func find(
        _ record: ParentRecord, link n: Int, child: CheckpointLocation, searchPaths: [String], visited: inout Set<String>,
        keys: CheckpointKeys, checkPageHashes: Bool
    ) throws -> Link {
        let childName = child.description
        let candidates: [CheckpointLocation]
        do {
            candidates = try Self.candidates(for: record.path, child: child, searchPaths: searchPaths)
        } catch let error as CheckpointUsageError {
            throw ChainError(.parentMissing, link: n, "the parent of \(childName) cannot be named: \(error)")
        }
        var mismatches: [String] = []
        var refusal: (any Error)?
        for location in candidates {
            guard LinkKey.exists(location) else { continue }
            if let key = LinkKey.of(location), visited.contains(key) {
                throw ChainError(.cycle, link: n, "\(location), the parent \(childName) names, is already a link of this chain (a cycle)")
            }
            let link: Link
            do {
                link = try open(location, link: n, visited: &visited, keys: keys, checkPageHashes: checkPageHashes)
            } catch let error as ObjectStoreError where error.kind == .notFound {
                continue
            } catch let error as CheckpointSignatureError {
                refusal = refusal ?? error
                continue
            } catch let error as CheckpointEncryptionError {
                refusal = refusal ?? error
                continue
            }
            if link.identity == record.identity {
                return link
            }
            if let key = LinkKey.of(location) {
                visited.remove(key)
            }
            mismatches.append("\(location) is \(link.identity.description.prefix(16))…")
        }
        if let refusal {
            throw refusal
        }
        if !mismatches.isEmpty {
            throw ChainError(
                .parentChanged, link: n,
                "\(childName) needs the parent \(record.identity.description.prefix(16))…, but \(mismatches.joined(separator: "; ")): the parent changed since \(childName) was saved")
        }
        let searched = searchPaths.isEmpty ? "" : ", nor as \(record.path.split(separator: "/").last ?? "") in \(searchPaths.joined(separator: ", "))"
        throw ChainError(
            .parentMissing, link: n,
            "the parent of \(childName) is not at \(candidates.first?.description ?? record.path)\(searched) (give its directory with --parent-dir)")
    }

    /// Opens and reads the checkpoint at `location` (everything but
    /// frames) with `keys`, and computes its identity. Only the parent of
    /// a save keeps its references (the pages it references are compared
    /// too).
    private static func open(
        _ location: CheckpointLocation, link n: Int, visited: inout Set<String>, keys: CheckpointKeys, checkPageHashes: Bool,
        keepReferences: Bool = false
    ) throws -> Link {
        do {
            guard case .random(let file) = try OpenedInput.open(location) else {
                throw ChainError(.parentInvalid, link: n, "\(location) is not a regular file")
            }
            var scanner = CheckpointScanner(input: SequentialReader(.random(file), bufferSize: 64 << 10), keys: keys)
            scanner.keepSegments = false
            scanner.checkPageHashes = checkPageHashes
            scanner.keepReferences = keepReferences
            scanner.memoryLimit = CheckpointFormat.maxFileSize
            let metadata = try scanner.scanWithoutFrames()
            guard metadata.header.version >= 2 else {
                throw ChainError(.notAParent, link: n, "\(location) is a version-1 checkpoint: it cannot be a parent")
            }
            if let key = LinkKey.of(location) {
                visited.insert(key)
            }
            // The scan computed the identity as it read, unless it read
            // part of the page hashes only.
            let identity = try metadata.security.identity ?? CheckpointReader.identity(of: file, metadata: metadata)
            return Link(input: file, metadata: metadata, identity: identity, location: location)
        } catch let error as CheckpointError {
            throw ChainError(.parentInvalid, link: n, "\(location): \(error)")
        }
    }
}

/// Paths of files and of object keys, taken apart and put together.
enum LocationPaths {
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    static func join(_ dir: String, _ name: String) -> String {
        dir.hasSuffix("/") ? dir + name : dir + "/" + name
    }

    /// A key without `.` and `..` segments (which a key may not have), or
    /// nil if `..` climbs above its start.
    static func normalized(_ key: String) -> String? {
        var parts: [Substring] = []
        for part in key.split(separator: "/", omittingEmptySubsequences: false) {
            switch part {
            case ".": continue
            case "..":
                guard !parts.isEmpty else { return nil }
                parts.removeLast()
            default: parts.append(part)
            }
        }
        return parts.joined(separator: "/")
    }
}

/// What tells two locations of the chain apart: a file's device and inode
/// (whatever path led to it), an object's bucket and key.
enum LinkKey {
    static func of(_ location: CheckpointLocation) -> String? {
        switch location {
        case .path(let path):
            var st = stat()
            guard stat(path, &st) == 0 else { return nil }
            return "file \(st.st_dev) \(st.st_ino)"
        case .object(let object):
            return object.description
        case .descriptor:
            return nil
        }
    }

    /// Whether there may be a checkpoint there: a file that exists, or any
    /// object (a missing one is found out by reading it).
    static func exists(_ location: CheckpointLocation) -> Bool {
        if case .path(let path) = location {
            var st = stat()
            return stat(path, &st) == 0
        }
        return true
    }
}

/// A checkpoint's chain, found as a scan reads the checkpoint: before any
/// frame (`beforeFrames`, the scanner's hook) its parents are found and
/// recognised and, from a file, its references checked against them; from
/// a stream the references are checked once read (`check`).
final class ChainResolution {
    let location: CheckpointLocation
    let searchPaths: [String]
    let keys: CheckpointKeys
    private(set) var chain: CheckpointChain?

    /// Resolves the chain of the checkpoint at `location`, each link read
    /// with `keys`, unless `known` gives it.
    init(location: CheckpointLocation, searchPaths: [String], keys: CheckpointKeys, known: CheckpointChain? = nil) {
        self.location = location
        self.searchPaths = searchPaths
        self.keys = keys
        chain = known
    }

    func beforeFrames(_ head: CheckpointHead, _ ends: CheckpointEnds?) throws {
        if chain == nil, let parent = head.parent {
            chain = try CheckpointChain.resolve(parent: parent, child: location, searchPaths: searchPaths, keys: keys)
        }
        if let ends {
            try ReferenceReader.check(ends.references, against: chain)
        }
    }

    func check(_ references: SpillArray<PageReference>) throws {
        try ReferenceReader.check(references, against: chain)
    }
}
