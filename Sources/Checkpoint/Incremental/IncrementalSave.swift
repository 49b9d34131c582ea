#if canImport(Glibc)
import Glibc
#endif
import PGAlloc

extension MemoryFile {
    /// Saves the file as an incremental checkpoint of the checkpoint at
    /// `parent`: a page equal to the parent's page at the same address is
    /// referenced, not stored (as is a page equal to one stored earlier in
    /// this checkpoint, or seen in the parent). The child records the
    /// parent's identity and its path relative to the child's directory;
    /// restoring the child needs the whole chain.
    ///
    /// The parent's own parents are found as a restore finds them: by the
    /// recorded path, then by file name in `parentSearchPaths`. Every link
    /// is read with `parentKeys` (an encrypted link needs a key that opens
    /// it; trusted signers, if given, must have signed every link): the
    /// save reads the parents' page hashes.
    ///
    /// - Throws: as `save(to:options:)`; `ChainError` if the parent or one
    ///   of its links cannot be used; `CheckpointUsageError` if `location`
    ///   is a link of the chain.
    public func save(
        to location: CheckpointLocation, parent: CheckpointLocation, parentSearchPaths: [String] = [],
        parentKeys: CheckpointKeys = CheckpointKeys(), options: SaveOptions = SaveOptions()
    ) throws -> SaveReport {
        let parentPages = try IncrementalParent.open(parent, for: location, searchPaths: parentSearchPaths, keys: parentKeys)
        return try CheckpointWriter.save(MemoryFileSource(self), to: location, parent: parentPages, options: options)
    }
}

extension RawImage {
    /// Saves the image at `source` as an incremental checkpoint of the
    /// checkpoint at `parent` (see `MemoryFile.save(to:parent:)`).
    public static func save(
        source: String, kind: MemoryKind = .anonymous, to location: CheckpointLocation, parent: CheckpointLocation,
        parentSearchPaths: [String] = [], parentKeys: CheckpointKeys = CheckpointKeys(),
        options: SaveOptions = SaveOptions()
    ) throws -> SaveReport {
        let parentPages = try IncrementalParent.open(parent, for: location, searchPaths: parentSearchPaths, keys: parentKeys)
        let input = try OwnedFileDescriptor.open(source, flags: O_RDONLY | O_NONBLOCK)
        return try CheckpointWriter.save(
            RawMemorySource(descriptor: input.descriptor, name: source, kind: kind), to: location, parent: parentPages, options: options)
    }
}

/// Opening the parent of an incremental save.
enum IncrementalParent {
    /// The chain of `parent`, checked, as the pages a save of `location`
    /// compares with. The child records the parent's path relative to its
    /// own directory when both are files, or both objects of one bucket;
    /// otherwise the parent's absolute path or `s3://` location. The chain
    /// is read with `keys`.
    static func open(
        _ parent: CheckpointLocation, for location: CheckpointLocation, searchPaths: [String], keys: CheckpointKeys
    ) throws -> ChainParentPages {
        if case .descriptor = parent {
            throw CheckpointUsageError("\(parent): a parent is a file or an object, not a descriptor: its child must be able to find it")
        }
        let chain = try CheckpointChain.openAsParent(parent, searchPaths: searchPaths, keys: keys)
        if let output = LinkKey.of(location), let link = chain.links.first(where: { LinkKey.of($0.location) == output }) {
            throw CheckpointUsageError("\(location) is a link of its parent's chain (\(link.path)): write the child elsewhere")
        }
        let recorded: String
        switch (parent, location) {
        case (.path(let p), .path(let output)):
            recorded = relativePath(from: absolutePath(LocationPaths.directory(of: output)), to: absolutePath(p))
        case (.path(let p), _):
            recorded = absolutePath(p)
        case (.object(let p), .object(let output)) where p.bucket == output.bucket:
            let directory = output.key.contains("/") ? LocationPaths.directory(of: output.key) : ""
            recorded = relativePath(from: "/" + directory, to: "/" + p.key)
        default:
            recorded = parent.description
        }
        guard recorded.utf8.count <= ParentSection.maxPathLength else {
            throw CheckpointUsageError("the path to the parent is longer than \(ParentSection.maxPathLength) bytes")
        }
        return ChainParentPages(chain: chain, path: recorded)
    }

    /// `path` made absolute and without `.`, `..` or symbolic links, as far
    /// as it exists.
    static func absolutePath(_ path: String) -> String {
        if let resolved = realpath(path, nil) {
            defer { free(resolved) }
            return String(cString: resolved)
        }
        if path.hasPrefix("/") { return path }
        guard let cwd = getcwd(nil, 0) else { return path }
        defer { free(cwd) }
        return String(cString: cwd) + "/" + path
    }

    /// The path of `target` relative to `directory` (both absolute).
    static func relativePath(from directory: String, to target: String) -> String {
        let from = directory.split(separator: "/")
        let to = target.split(separator: "/")
        var common = 0
        while common < from.count && common < to.count - 1 && from[common] == to[common] {
            common += 1
        }
        let ups = Array(repeating: "..", count: from.count - common)
        return (ups + to[common...].map(String.init)).joined(separator: "/")
    }
}
