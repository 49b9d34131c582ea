import PGAlloc

/// Decides, page by page and in address order, whether a save stores a
/// page or references one stored elsewhere: the parent's page at the same
/// address when it is equal, else an equal page found earlier (stored by
/// this checkpoint, or seen in the parent).
///
/// Workers hash their units in parallel and compare them with the parent's
/// pages at the same addresses on their own; then each takes its turn, in
/// unit order, for what depends on the units before it (the table of pages
/// seen). The checkpoint is therefore the same whatever the thread timing.
final class PageDecisions: @unchecked Sendable {
    private struct Turn {
        var next = 0
        var failed = false
    }

    private let turn = StateLock(Turn())
    private let turnChanged: StateLock<Turn>.Condition
    /// Used only by the unit whose turn it is.
    private var seen: DigestTable
    let parent: ParentPages?

    /// The failure of an earlier unit, seen by a unit waiting for its turn.
    struct EarlierUnitFailed: Error {}

    init(parent: ParentPages?, expectedPages: UInt64) throws {
        self.parent = parent
        seen = try DigestTable(expectedEntries: expectedPages)
        turnChanged = turn.makeCondition()
    }

    /// Runs `body` once every unit before `unit` has had its turn. A unit
    /// that fails before or during its turn must call `fail()`.
    func inTurn<R>(_ unit: Int, _ body: (inout DigestTable) throws -> R) throws -> R {
        let ready = turn.withLock(waitingOn: turnChanged) { t -> StateLock<Turn>.Step<Bool> in
            if t.failed { return .done(false) }
            return t.next == unit ? .done(true) : .wait
        }
        guard ready else { throw EarlierUnitFailed() }
        let result = try body(&seen)
        turn.withLock { $0.next = unit + 1 }
        turn.broadcast(turnChanged)
        return result
    }

    /// A unit failed: the ones waiting for it give up.
    func fail() {
        turn.withLock { $0.failed = true }
        turn.broadcast(turnChanged)
    }
}

/// Pages seen so far, by the first eight bytes of their hash: where each is
/// stored (link and address). An open-addressing table of fixed size,
/// bounded so that a save's memory does not grow with the data: once three
/// quarters full it takes no more pages, and later duplicates of pages it
/// does not hold are stored again.
struct DigestTable {
    private let slots: PageBuffer
    private let mask: Int
    private(set) var count = 0
    private let limit: Int

    /// The most slots: 32 MiB of table, 1.5 Mi pages (6 GiB of distinct
    /// pages).
    static let maxSlots = 1 << 21

    init(expectedEntries: UInt64) throws {
        var n = 1024
        while n < Self.maxSlots && UInt64(n) * 3 < expectedEntries * 4 {
            n <<= 1
        }
        slots = try PageBuffer(capacity: n * 16)
        mask = n - 1
        limit = n / 4 * 3
    }

    private func slot(_ i: Int) -> UnsafeMutablePointer<UInt64> {
        slots.bytes.baseAddress!.assumingMemoryBound(to: UInt64.self) + 2 * i
    }

    /// Keys are never 0: 0 marks an empty slot.
    private static func key(_ digest: PageDigest) -> UInt64 { digest.prefix | 1 }

    private static func pack(link: Int, source: UInt64) -> UInt64 {
        UInt64(link) << 52 | source / CheckpointFormat.pageSize
    }

    /// The first page recorded with `digest`'s key for which `matches` (the
    /// caller compares contents) says yes.
    func find(_ digest: PageDigest, matches: (_ link: Int, _ source: UInt64) throws -> Bool) rethrows -> (link: Int, source: UInt64)? {
        let key = Self.key(digest)
        var i = Int(truncatingIfNeeded: key >> 12) & mask
        while true {
            let s = slot(i)
            if s[0] == 0 { return nil }
            if s[0] == key {
                let link = Int(s[1] >> 52)
                let source = (s[1] & (1 << 52 - 1)) * CheckpointFormat.pageSize
                if try matches(link, source) { return (link, source) }
            }
            i = (i + 1) & mask
        }
    }

    /// Records a page, unless the table is full.
    mutating func insert(_ digest: PageDigest, link: Int, source: UInt64) {
        guard count < limit else { return }
        let key = Self.key(digest)
        var i = Int(truncatingIfNeeded: key >> 12) & mask
        while slot(i)[0] != 0 {
            i = (i + 1) & mask
        }
        slot(i)[0] = key
        slot(i)[1] = Self.pack(link: link, source: source)
        count += 1
    }
}
