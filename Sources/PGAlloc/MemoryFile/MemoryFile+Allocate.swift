// Allocation: finding a range, growing the file, filling new pages.

import CLinuxShim

extension MemoryFile {
    /// Allocates `length` bytes of initially zero pages of `kind`, with one
    /// reference held by the caller. Allocations of 2 MiB and more are
    /// aligned to 2 MiB (huge pages). The file grows, doubling, when no gap
    /// fits.
    ///
    /// - Precondition: `length` is non-zero and page-aligned.
    /// - Throws: `MemoryFileError.outOfMemory` if no file of any size can
    ///   hold the range; `HostError` if growing or zeroing the file fails.
    /// - Note: gVisor MemoryFile.Allocate.
    public func allocate(_ length: UInt64, kind: MemoryKind, direction: AllocationDirection = .topDown) throws -> FileRange {
        try core.allocate(length, kind: kind, direction: direction)
    }

    /// Allocates `length` bytes of `kind` and fills them by calling `read`
    /// with the unfilled rest of each mapped block until everything is
    /// filled or `read` returns 0 (end of input). Returns the filled pages
    /// (rounded down to a page; empty if none); the rest is freed.
    ///
    /// If `populate` is set, the pages of each block are committed in bulk
    /// first, which beats faulting them one by one when the caller writes
    /// them from this process.
    ///
    /// - Precondition: `length` is non-zero and page-aligned.
    /// - Throws: `PartialFillError` if `read` throws: the pages filled so
    ///   far stay allocated and belong to the caller, as in the seed;
    ///   allocation errors as `allocate`.
    /// - Note: gVisor MemoryFile.AllocateAndFill.
    public func allocateAndFill(
        _ length: UInt64, kind: MemoryKind, populate: Bool = false,
        read: (UnsafeMutableRawBufferPointer) throws -> Int
    ) throws -> FileRange {
        try core.allocateAndFill(length, kind: kind, populate: populate, read: read)
    }
}

/// `read` failed part-way through `allocateAndFill`.
public struct PartialFillError: Error, CustomStringConvertible {
    /// The pages filled before the failure: still allocated, owned by the
    /// caller (who must `decRef` them). Empty if none.
    public var filled: FileRange
    /// What `read` threw.
    public var underlying: any Error

    public var description: String {
        "allocateAndFill: read failed after filling \(filled): \(underlying)"
    }
}

extension MemoryFileCore {
    func allocate(_ length: UInt64, kind: MemoryKind, direction: AllocationDirection) throws -> FileRange {
        precondition(
            length != 0 && length % PageSize.base == 0,
            "MemoryFile.allocate: invalid allocation length 0x\(String(length, radix: 16))")
        // Large allocations go on huge-page boundaries, which lets a huge
        // tmpfs back them with huge pages.
        let alignment = length >= PageSize.huge ? PageSize.huge : PageSize.base
        return try state.withLock { (s: inout MemoryFileState) throws -> FileRange in
            checkAlive(s, "allocate")
            guard var (fr, gap, gapRange) = findAvailableRange(s, length: length, alignment: alignment, direction: direction) else {
                throw MemoryFileError.outOfMemory(length: length)
            }
            if fr.end > s.fileSize && !s.pendingReclaim.isEmpty {
                // Freed ranges the reclaimer has not got to yet (it may be
                // starved of CPU) are free memory: take them back here
                // rather than grow the file past them.
                reclaimPendingLocked(&s)
                guard let found = findAvailableRange(s, length: length, alignment: alignment, direction: direction) else {
                    throw MemoryFileError.outOfMemory(length: length)
                }
                (fr, gap, gapRange) = found
            }
            if fr.end > s.fileSize {
                try growFile(&s, toCover: fr.end)
            }
            if options.manualZeroing {
                try manuallyZero(fr)
            }
            // The search found the gap and its range: insert there rather
            // than look either up again (the seed's usage.Add).
            s.usage.insert(fr, UsageInfo(kind: kind, knownCommitted: false, refs: 1), into: gap, gapRange: gapRange)
            return fr
        }
    }

    /// Grows the file, in whole chunks, to cover `end`.
    func growFile(_ s: inout MemoryFileState, toCover end: UInt64) throws {
        let newSize = (end + chunkMask) & ~chunkMask
        try s.file!.truncate(to: newSize)
        s.fileSize = newSize
        mappings.grow(to: Int(newSize >> chunkShift))
    }

    func findAvailableRange(
        _ s: borrowing MemoryFileState, length: UInt64, alignment: UInt64, direction: AllocationDirection
    ) -> (FileRange, UsageSet.Gap, FileRange)? {
        switch direction {
        case .bottomUp:
            return findAvailableRangeBottomUp(s.usage, length: length, alignment: alignment)
        case .topDown:
            return findAvailableRangeTopDown(s.usage, fileSize: s.fileSize, length: length, alignment: alignment)
        }
    }

    func allocateAndFill(
        _ length: UInt64, kind: MemoryKind, populate: Bool,
        read: (UnsafeMutableRawBufferPointer) throws -> Int
    ) throws -> FileRange {
        let fr = try allocate(length, kind: kind, direction: .topDown)
        var filled: UInt64 = 0
        var failure: (any Error)?
        do {
            try forEachMappingSlice(fr) { block in
                if failure != nil {
                    return
                }
                if populate {
                    populatePages(block)
                }
                var off = 0
                while off < block.count {
                    let n: Int
                    do {
                        n = try read(UnsafeMutableRawBufferPointer(rebasing: block[off...]))
                    } catch {
                        failure = error
                        return
                    }
                    precondition(n >= 0 && n <= block.count - off, "MemoryFile.allocateAndFill: read returned \(n) for \(block.count - off) bytes")
                    if n == 0 {
                        failure = EndOfInput()
                        return
                    }
                    off += n
                    filled += UInt64(n)
                }
            }
        } catch {
            decRef(fr)
            throw error
        }
        let kept = PageSize.roundDown(filled)
        if kept < length {
            decRef(FileRange(start: fr.start + kept, end: fr.end))
        }
        let result = FileRange(start: fr.start, end: fr.start + kept)
        if let failure, !(failure is EndOfInput) {
            throw PartialFillError(filled: result, underlying: failure)
        }
        return result
    }

    /// Commits the pages of `block` in one call (`MADV_POPULATE_WRITE`),
    /// for the huge-page-aligned part of it; best effort.
    private func populatePages(_ block: UnsafeMutableRawBufferPointer) {
        let base = UInt64(UInt(bitPattern: block.baseAddress))
        let start = (base + PageSize.huge - 1) & ~(PageSize.huge - 1)
        let end = (base + UInt64(block.count)) & ~(PageSize.huge - 1)
        guard start < end else { return }
        try? HostMapping.advise(
            UnsafeMutableRawPointer(bitPattern: UInt(start))!, length: Int(end - start),
            pg_MADV_POPULATE_WRITE, name: "madvise(MADV_POPULATE_WRITE)")
    }
}

private struct EndOfInput: Error {}

/// Finds room for `length` bytes at the highest offset possible: first in
/// the gaps below the file's end, from the last one backward, then past the
/// end of a file grown by doubling. Returns the range, the gap that holds
/// it and that gap's range.
///
/// - Precondition: `alignment` is a power of two.
/// - Note: gVisor findAvailableRangeTopDown.
func findAvailableRangeTopDown(
    _ usage: borrowing UsageSet, fileSize: UInt64, length: UInt64, alignment: UInt64
) -> (FileRange, UsageSet.Gap, FileRange)? {
    let mask = alignment - 1
    let lastGap = usage.lastGap
    // The last gap runs to the end of the key space: only its start needs
    // looking up, and it is the end of the last segment, in the same leaf.
    let lastGapRange = FileRange(start: usage.start(of: lastGap), end: UsageSetFunctions.maxKey)
    var candidate: (gap: UsageSet.Gap, range: FileRange)? = (lastGap, lastGapRange)
    while let (g, r) = candidate {
        let end = min(r.end, fileSize)
        // Take the end of the gap, the start aligned down.
        let (unalignedStart, underflow) = end.subtractingReportingOverflow(length)
        if underflow {
            // This gap, and every one before it, is too small.
            break
        }
        let start = unalignedStart & ~mask
        if start >= r.start {
            return (FileRange(start: start, end: start + length), g, r)
        }
        candidate = usage.previousLargeEnoughGapAndRange(before: g, minSize: length)
    }

    // Past the end of the file: check that the allocation fits at all.
    let (minStartRaw, o1) = lastGapRange.start.addingReportingOverflow(mask)
    let minStart = minStartRaw & ~mask
    if o1 || minStart.addingReportingOverflow(length).overflow {
        return nil
    }
    // The smallest doubling of the file that fits it at its end. File
    // offsets are signed 64-bit on the host.
    var size = fileSize
    while true {
        var newSize = size &* 2
        if newSize <= size {
            if size != 0 {
                return nil
            }
            newSize = chunkSize
        }
        if newSize > UInt64(Int64.max) {
            return nil
        }
        size = newSize
        let (unalignedStart, underflow) = size.subtractingReportingOverflow(length)
        if underflow {
            continue
        }
        let start = unalignedStart & ~mask
        if start >= minStart {
            return (FileRange(start: start, end: start + length), lastGap, lastGapRange)
        }
    }
}

/// Finds room for `length` bytes at the lowest offset possible, in the first
/// gap (including the unbounded one past the last segment) that fits it.
/// Returns the range, the gap that holds it and that gap's range.
///
/// - Precondition: `alignment` is a power of two.
/// - Note: gVisor findAvailableRangeBottomUp.
func findAvailableRangeBottomUp(
    _ usage: borrowing UsageSet, length: UInt64, alignment: UInt64
) -> (FileRange, UsageSet.Gap, FileRange)? {
    let mask = alignment - 1
    let firstGap = usage.firstGap
    var candidate: (gap: UsageSet.Gap, range: FileRange)? = (firstGap, usage.range(of: firstGap))
    while let (g, r) = candidate {
        let (startRaw, o1) = r.start.addingReportingOverflow(mask)
        let start = startRaw & ~mask
        let (end, o2) = start.addingReportingOverflow(length)
        // The file grows to whole chunks and its size is a signed 64-bit
        // offset: the end must lie below the last chunk boundary that fits.
        if o1 || o2 || end > UInt64(Int64.max) & ~chunkMask {
            return nil
        }
        if end <= r.end {
            return (FileRange(start: start, end: end), g, r)
        }
        candidate = usage.nextLargeEnoughGapAndRange(after: g, minSize: length)
    }
    preconditionFailure("MemoryFile.allocate: no gap at the end of the usage set for 0x\(String(length, radix: 16)) bytes")
}
