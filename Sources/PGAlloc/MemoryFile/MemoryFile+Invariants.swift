/// A broken invariant of a MemoryFile, found by `checkInvariants()`.
public struct MemoryFileInvariantError: Error, CustomStringConvertible {
    public var problem: String
    public var usage: String
    public var description: String { "\(problem)\nusage set:\n\(usage)" }
}

extension MemoryFile {
    /// Checks, under the lock: both segment sets' own invariants (the usage
    /// set maximally merged), every segment inside the file, the file size a
    /// multiple of the chunk size, every freed segment waiting for the
    /// reclaimer (or being reclaimed) and every waiting range freed, the expected
    /// usage equal to the known-committed bytes, and, when the file has an
    /// accounting of its own, every per-kind total equal to the sum over the
    /// usage set (plus swapped bytes for System).
    public func checkInvariants() throws(MemoryFileInvariantError) {
        let ownAccounting = core.options.accounting == nil
        let problem: String? = core.state.withLock { s in
            do throws(SegmentSetInvariantError) {
                try s.usage.checkInvariants(requireMaximallyMerged: true)
            } catch {
                return "usage set: \(error.problem)"
            }
            if s.fileSize % chunkSize != 0 {
                return "file size 0x\(String(s.fileSize, radix: 16)) is not a multiple of the chunk size"
            }
            var committed = MemoryStats()
            var expected: UInt64 = 0
            for (range, info) in s.usage.segments {
                if range.end > s.fileSize {
                    return "segment \(range) reaches past the end of the file at 0x\(String(s.fileSize, radix: 16))"
                }
                if !range.isAligned(to: PageSize.base) {
                    return "segment \(range) is not page-aligned"
                }
                if info.knownCommitted {
                    committed[info.kind] += range.length
                    expected += range.length
                }
                if info.refs == 0 {
                    if info.kind != .system {
                        return "freed segment \(range) is accounted as \(info.kind), not system"
                    }
                    var waiting: UInt64 = 0
                    for pending in s.pendingReclaim {
                        waiting += pending.intersection(range).length
                    }
                    for inFlight in s.reclaimInFlight[s.reclaimInFlightMarked...] {
                        waiting += inFlight.intersection(range).length
                    }
                    if waiting != range.length {
                        return "freed segment \(range) is not all waiting for the reclaimer"
                    }
                }
            }
            var pendingCheck = UntrackedFileRangeSet()
            for range in s.pendingReclaim {
                if !pendingCheck.add(range, ()) {
                    return "range \(range) is waiting for the reclaimer twice"
                }
            }
            for range in s.pendingReclaim {
                var covered: UInt64 = 0
                var seg = s.usage.lowerBoundSegment(range.start)
                while let current = seg, s.usage.start(of: current) < range.end {
                    let info = s.usage[current]
                    if info.refs != 0 || info.kind != .system {
                        return "reclaim range \(range) overlaps segment \(s.usage.range(of: current)) in use \(info)"
                    }
                    covered += s.usage.range(of: current).intersection(range).length
                    seg = s.usage.nextSegment(after: current)
                }
                if covered != range.length {
                    return "reclaim range \(range) includes unallocated pages"
                }
            }
            if expected != s.usageExpected {
                return "expected usage \(s.usageExpected), but known-committed segments hold \(expected)"
            }
            if ownAccounting {
                committed[.system] += s.usageSwapped
                for kind in MemoryKind.allCases {
                    committed[kind] += s.pendingAccounted[kind]
                }
                let actual = core.accounting.snapshot()
                if actual != committed {
                    return "accounting \(actual) differs from the usage set's \(committed)"
                }
            }
            var evicting = 0
            for (_, info) in s.evictable {
                do throws(SegmentSetInvariantError) {
                    try info.ranges.checkInvariants(requireMaximallyMerged: true)
                } catch {
                    return "evictable ranges: \(error.problem)"
                }
                if info.evicting {
                    evicting += 1
                } else if info.ranges.isEmpty {
                    return "a user with no evictable range and no eviction is still registered"
                }
            }
            if evicting != s.evictionsRunning {
                return "\(s.evictionsRunning) eviction threads counted, \(evicting) users evicting"
            }
            return nil
        }
        if let problem {
            throw MemoryFileInvariantError(problem: problem, usage: description)
        }
    }

    /// The usage set as it is now.
    public var usageSnapshot: UsageSet {
        core.state.withLock { $0.usage }
    }

    /// What the usage set costs: its segments, and the bytes of node
    /// storage they have used (the file's own bookkeeping, apart from what
    /// a save or a restore allocates). Walks the set.
    public var usageSetFootprint: (segments: Int, bytes: Int) {
        core.state.withLock { ($0.usage.segmentCount, $0.usage.storageBytes) }
    }
}
