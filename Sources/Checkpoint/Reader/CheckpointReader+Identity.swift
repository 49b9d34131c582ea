extension CheckpointReader {
    /// The identity of the checkpoint file `file`, from the parts
    /// `metadata` (read from the same file) locates: its header, head
    /// region, index and tail sections are read again and hashed. A scan
    /// computes the same as it reads (`CheckpointSecurity.identity`): this
    /// is the independent computation tests compare it with. Version 1
    /// checkpoints have none: they cannot be parents.
    static func identity(of file: RandomAccessInput, metadata: CheckpointMetadata) throws -> CheckpointIdentity {
        precondition(metadata.header.version >= 2, "CheckpointReader.identity: version \(metadata.header.version) has no identity")
        var hasher = ManifestHasher()
        func hashRange(_ start: UInt64, _ end: UInt64, section: CheckpointSection) throws {
            var at = start
            let piece = 1 << 20
            var buffer = [UInt8](repeating: 0, count: Int(min(UInt64(piece), end - start)))
            while at < end {
                let n = Int(min(UInt64(piece), end - at))
                try buffer.withUnsafeMutableBytes { b in
                    let slice = UnsafeMutableRawBufferPointer(rebasing: b[..<n])
                    try file.read(at: at, into: slice, section: section)
                    hasher.add(UnsafeRawBufferPointer(slice))
                }
                at += UInt64(n)
            }
        }
        let headerLength = UInt64(HeaderLayout.recordLength)
        hasher.beginPart(length: headerLength)
        try hashRange(0, headerLength, section: .header)
        hasher.beginPart(length: metadata.framesOffset - headerLength)
        try hashRange(headerLength, metadata.framesOffset, section: .sectionTable(.head))
        hasher.beginPart(length: metadata.indexLength)
        try hashRange(metadata.indexOffset, metadata.indexOffset + metadata.indexLength, section: .index)
        for entry in metadata.sections where entry.placement == .tail && !entry.type.isOutsideManifest {
            hasher.beginTailSection(type: entry.type, flags: entry.flags, length: entry.length)
            try hashRange(entry.offset, entry.end, section: .section(entry.type))
        }
        return hasher.finish()
    }
}

extension CheckpointReader {
    /// The identity of the version-2 checkpoint file at `location` (see
    /// `CheckpointIdentity`), with its metadata, read with `keys` (an
    /// encrypted checkpoint needs one). Frames are not read: a frame's
    /// bytes are bound to the identity by its index entry.
    public static func identity(
        of location: CheckpointLocation, keys: CheckpointKeys = CheckpointKeys()
    ) throws -> (CheckpointIdentity, CheckpointMetadata) {
        guard case .random(let file) = try OpenedInput.open(location) else {
            throw CheckpointUsageError("\(location): a checkpoint's identity is read from a file, not a stream")
        }
        let metadata = try CheckpointScanner(input: SequentialReader(.random(file), bufferSize: 64 << 10), keys: keys).scanWithoutFrames()
        guard metadata.header.version >= 2 else {
            throw CheckpointUsageError("\(file.name): a version-1 checkpoint has no identity")
        }
        // A scan that read the page hashes in part knows none.
        return (try metadata.security.identity ?? identity(of: file, metadata: metadata), metadata)
    }
}
