// Eviction: asking users of evictable memory to give it back.

/// A user of MemoryFile memory that can be asked to free it under memory
/// pressure; the seed's `EvictableMemoryUser`.
public protocol EvictableMemoryUser: AnyObject, Sendable {
    /// Asks the user to free the memory it registered as evictable over
    /// `range` (with `markEvictable`).
    ///
    /// The MemoryFile calls this without holding its locks, so the range
    /// may have been marked unevictable meanwhile: implementations must
    /// detect that and then leave the range alone. After the call the
    /// MemoryFile treats the range as unevictable until it is marked
    /// evictable again.
    func evict(_ range: EvictableRange)
}

/// A range of offsets in an `EvictableMemoryUser`'s own space (not file
/// offsets).
public typealias EvictableRange = FileRange

/// Eviction state of one user.
struct EvictableUserInfo {
    let user: any EvictableMemoryUser
    /// The user's evictable ranges.
    var ranges = UntrackedFileRangeSet()
    /// Whether a thread is evicting this user's ranges.
    var evicting = false
}

extension MemoryFile {
    /// Lets the MemoryFile ask `user` to evict `range` later. Marking an
    /// evictable range again has no effect.
    ///
    /// - Note: gVisor MemoryFile.MarkEvictable.
    public func markEvictable(_ user: any EvictableMemoryUser, _ range: EvictableRange) {
        core.markEvictable(user, range)
    }

    /// Tells the MemoryFile that `range` of `user` is no longer evictable.
    /// `user.evict` may still be called for it by a racing eviction (see
    /// `EvictableMemoryUser.evict`).
    ///
    /// - Note: gVisor MemoryFile.MarkUnevictable.
    public func markUnevictable(_ user: any EvictableMemoryUser, _ range: EvictableRange) {
        core.markUnevictable(user, range)
    }

    /// Tells the MemoryFile that nothing of `user` is evictable any more.
    ///
    /// - Note: gVisor MemoryFile.MarkAllUnevictable.
    public func markAllUnevictable(_ user: any EvictableMemoryUser) {
        core.markAllUnevictable(user)
    }

    /// Whether the MemoryFile really delays evictions, so that caching data
    /// in evictable memory may pay off.
    ///
    /// - Note: gVisor MemoryFile.ShouldCacheEvictable.
    public var shouldCacheEvictable: Bool {
        core.options.delayedEviction == .manual || core.options.useHostMemcgPressure
    }

    /// Starts evicting everything evictable; does not wait (see
    /// `waitForEvictions()`).
    ///
    /// - Note: gVisor MemoryFile.StartEvictions.
    public func startEvictions() {
        core.state.withLock { _ = core.startEvictionsLocked(&$0) }
    }

    /// Waits until no eviction is running.
    ///
    /// - Note: gVisor MemoryFile.WaitForEvictions.
    public func waitForEvictions() {
        core.waitForEvictions()
    }

    /// The number of users with evictable ranges or a running eviction.
    public var evictableUserCount: Int {
        core.state.withLock { $0.evictable.count }
    }
}

extension MemoryFileCore {
    func markEvictable(_ user: any EvictableMemoryUser, _ range: EvictableRange) {
        precondition(range.isWellFormed && !range.isEmpty, "MemoryFile.markEvictable(\(range)): invalid range")
        var wakeReclaimer = false
        state.withLock { s in
            let id = ObjectIdentifier(user)
            var info = s.evictable.removeValue(forKey: id) ?? EvictableUserInfo(user: user)
            var gap = info.ranges.lowerBoundGap(range.start)
            while info.ranges.start(of: gap) < range.end {
                let part = info.ranges.range(of: gap).intersection(range)
                if part.isEmpty {
                    guard let next = info.ranges.nextGap(after: gap) else { break }
                    gap = next
                    continue
                }
                let seg = info.ranges.insert(part, (), into: gap)
                gap = info.ranges.nextGap(after: seg)
            }
            let evicting = info.evicting
            s.evictable[id] = info
            if !evicting {
                switch options.delayedEviction {
                case .disabled:
                    startEvictionThreadLocked(&s, id)
                case .enabled where !options.useHostMemcgPressure:
                    // The reclaimer starts evictions when it runs out of work.
                    wakeReclaimer = true
                default:
                    break
                }
            }
        }
        if wakeReclaimer {
            state.signal(reclaimCond)
        }
    }

    func markUnevictable(_ user: any EvictableMemoryUser, _ range: EvictableRange) {
        precondition(range.isWellFormed, "MemoryFile.markUnevictable(\(range)): invalid range")
        state.withLock { s in
            let id = ObjectIdentifier(user)
            guard var info = s.evictable.removeValue(forKey: id) else { return }
            if !range.isEmpty {
                info.ranges.removeRange(range)
            }
            // The entry stays while an eviction thread runs for the user;
            // that thread removes it.
            if info.evicting || !info.ranges.isEmpty {
                s.evictable[id] = info
            }
        }
    }

    func markAllUnevictable(_ user: any EvictableMemoryUser) {
        state.withLock { s in
            let id = ObjectIdentifier(user)
            guard var info = s.evictable.removeValue(forKey: id) else { return }
            info.ranges.removeAll()
            if info.evicting {
                s.evictable[id] = info
            }
        }
    }

    /// Starts an eviction thread for every user that has none; returns
    /// whether it started any.
    ///
    /// - Note: gVisor MemoryFile.startEvictionsLocked.
    @discardableResult
    func startEvictionsLocked(_ s: inout MemoryFileState) -> Bool {
        var startedAny = false
        for (id, info) in s.evictable where !info.evicting {
            if startEvictionThreadLocked(&s, id) {
                startedAny = true
            }
        }
        return startedAny
    }

    /// Starts a thread that evicts the ranges of user `id`, from the last
    /// one backward, until none is left.
    ///
    /// - Precondition: the user has an entry and no eviction thread.
    /// - Note: gVisor MemoryFile.startEvictionGoroutineLocked.
    @discardableResult
    private func startEvictionThreadLocked(_ s: inout MemoryFileState, _ id: ObjectIdentifier) -> Bool {
        precondition(s.evictable[id]?.evicting == false, "MemoryFile: eviction already running for \(id)")
        s.evictable[id]!.evicting = true
        s.evictionsRunning += 1
        do {
            let thread = try HostThread(name: "pgalloc-evict") { [self] in
                self.runEviction(id)
            }
            thread.detach()
            return true
        } catch {
            // Try again at the next opportunity.
            logger.warning("MemoryFile: cannot start an eviction thread: \(error)")
            s.evictable[id]!.evicting = false
            s.evictionsRunning -= 1
            return false
        }
    }

    private func runEviction(_ id: ObjectIdentifier) {
        while true {
            let next: (any EvictableMemoryUser, EvictableRange)? = state.withLock { s in
                guard var info = s.evictable[id] else {
                    preconditionFailure("MemoryFile: eviction state of \(id) deleted while its eviction thread runs")
                }
                // Evict from the end: if the user starts using these ranges
                // again, it likely starts from the beginning.
                guard let seg = info.ranges.lastSegment else {
                    s.evictable[id] = nil
                    s.evictionsRunning -= 1
                    if s.evictionsRunning == 0 {
                        state.broadcast(evictionsDoneCond)
                    }
                    return nil
                }
                let range = info.ranges.range(of: seg)
                info.ranges.remove(seg)
                s.evictable[id] = info
                return (info.user, range)
            }
            guard let (user, range) = next else { return }
            // Without the lock: evict may call back into the MemoryFile.
            user.evict(range)
        }
    }

    func waitForEvictions() {
        state.withLock(waitingOn: evictionsDoneCond) { s -> StateLock<MemoryFileState>.Step<Void> in
            s.evictionsRunning == 0 ? .done(()) : .wait
        }
    }
}
