// Mapping the file into this process.

extension MemoryFile {
    /// Lends the mapped bytes of `fr`: `body` gets one buffer per chunk the
    /// range crosses (the seed's BlockSeq). The buffers must not escape
    /// `body`. Reading an uncommitted page through them commits it.
    ///
    /// While the file is loading (a lazy restore), waits first for the
    /// contents of `fr`.
    ///
    /// - Precondition: `fr` is non-empty and lies within the file.
    /// - Throws: `MemoryFileError.executeAccessDenied` for `.execute`;
    ///   `HostError` if a chunk cannot be mapped; a load failure; what
    ///   `body` throws.
    /// - Note: gVisor MemoryFile.MapInternal.
    public func mapInternal<R>(
        _ fr: FileRange, access: AccessType = .readWrite,
        _ body: ([UnsafeMutableRawBufferPointer]) throws -> R
    ) throws -> R {
        try core.waitForContents(fr)
        return try core.mapInternal(fr, access: access, body)
    }

    /// Calls `body` on each mapped slice of `fr`, in order (one per chunk the
    /// range crosses). The buffers must not escape `body`. While the file is
    /// loading (a lazy restore), waits first for the contents of `fr`.
    ///
    /// - Precondition: `fr` is non-empty and lies within the file.
    public func forEachMappedSlice(_ fr: FileRange, _ body: (UnsafeMutableRawBufferPointer) throws -> Void) throws {
        precondition(fr.isWellFormed && !fr.isEmpty, "MemoryFile.forEachMappedSlice(\(fr)): invalid range")
        try core.waitForContents(fr)
        try core.forEachMappingSlice(fr, body)
    }

    /// Lends the mapping of every chunk of the file (address, file offset,
    /// length), mapping the chunks that are not mapped yet: for a VMM that
    /// hands guest memory to its vCPUs (as gVisor's KVM platform maps the
    /// chunks into the guest), and for measuring raw access. The addresses
    /// stay valid until `destroy()`; while the file is lazily restored,
    /// access through them is caught by its fault handler.
    public func withChunkMappings<R>(_ body: ([(address: UnsafeMutableRawPointer, offset: UInt64, length: Int)]) throws -> R) throws -> R {
        var chunks: [(address: UnsafeMutableRawPointer, offset: UInt64, length: Int)] = []
        try forEachChunkMapping { chunks.append((address: $0, offset: $1, length: $2)) }
        return try body(chunks)
    }

    /// Calls `body` with the address, file offset and length of every chunk
    /// of the file, mapping the chunks that are not mapped yet: a lazy
    /// restore registers them for fault handling.
    package func forEachChunkMapping(_ body: (UnsafeMutableRawPointer, UInt64, Int) throws -> Void) throws {
        let size = totalSize
        var offset: UInt64 = 0
        while offset < size {
            let base = try core.mappings.address(ofChunk: Int(offset >> chunkShift), fd: core.fd)
            try body(base, offset, Int(chunkSize))
            offset += chunkSize
        }
    }

    /// The address, first file offset and length of the chunk holding
    /// `offset`, mapping it first if needed: an eager restore registers
    /// the chunks it writes to, and only those.
    ///
    /// - Precondition: `offset` is inside the file.
    package func chunkMapping(holding offset: UInt64) throws -> (UnsafeMutableRawPointer, UInt64, Int) {
        precondition(offset < totalSize, "MemoryFile.chunkMapping: offset \(offset) beyond the file (\(totalSize) bytes)")
        let base = try core.mappings.address(ofChunk: Int(offset >> chunkShift), fd: core.fd)
        return (base, offset & ~(chunkSize - 1), Int(chunkSize))
    }
}

extension MemoryFileCore {
    func mapInternal<R>(
        _ fr: FileRange, access: AccessType,
        _ body: ([UnsafeMutableRawBufferPointer]) throws -> R
    ) throws -> R {
        precondition(fr.isWellFormed && !fr.isEmpty, "MemoryFile.mapInternal(\(fr)): invalid range")
        if access.contains(.execute) {
            throw MemoryFileError.executeAccessDenied(fr)
        }
        var blocks: [UnsafeMutableRawBufferPointer] = []
        blocks.reserveCapacity(Int(((fr.end + chunkMask) >> chunkShift) - (fr.start >> chunkShift)))
        try forEachMappingSlice(fr) { blocks.append($0) }
        return try body(blocks)
    }

    /// Calls `body` on the mapped bytes of `fr`, one slice per chunk,
    /// mapping chunks as needed. Lock-free once the chunks are mapped.
    ///
    /// - Note: gVisor MemoryFile.forEachMappingSlice.
    @inline(__always)
    func forEachMappingSlice(_ fr: FileRange, _ body: (UnsafeMutableRawBufferPointer) throws -> Void) throws {
        var chunkStart = fr.start & ~chunkMask
        while chunkStart < fr.end {
            let base = try mappings.address(ofChunk: Int(chunkStart >> chunkShift), fd: fd)
            let startOff = chunkStart < fr.start ? fr.start - chunkStart : 0
            let endOff = chunkStart + chunkSize > fr.end ? fr.end - chunkStart : chunkSize
            try body(UnsafeMutableRawBufferPointer(start: base + Int(startOff), count: Int(endOff - startOff)))
            chunkStart += chunkSize
        }
    }
}
