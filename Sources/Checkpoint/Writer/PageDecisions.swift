import CXXHash
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

    /// The seed of this save's page keys: a new one each save, so that
    /// which pages share a key cannot be arranged in advance.
    private let seed = UInt64.random(in: .min ... .max)

    init(parent: ParentPages?, expectedPages: UInt64) throws {
        self.parent = parent
        seen = try DigestTable(expectedEntries: expectedPages)
        turnChanged = turn.makeCondition()
    }

    /// The table key of a page, in a save without a parent: its XXH3, which
    /// costs a few percent of a SHA-256. Pages with the same key are
    /// compared byte for byte before one references the other, so only
    /// the pages stored need their SHA-256. (A save with a parent keys
    /// pages by their SHA-256 instead, which the parent's pages have.)
    func key(of page: UnsafeRawBufferPointer) -> UInt64 {
        XXH3_64bits_withSeed(page.baseAddress, page.count, seed)
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

/// Pages seen so far, by a 64-bit key (their XXH3, or the first eight
/// bytes of their SHA-256): where each is stored (link and address). An
/// open-addressing table of fixed size, bounded so that a save's memory
/// does not grow with the data: once three quarters full it takes no more
/// pages, and later duplicates of pages it does not hold are stored again.
/// It also holds at most `maxPerKey` pages of one key, and a lookup
/// compares at most that many: pages made to share a key cost a few
/// comparisons each, and are stored rather than deduplicated, instead of
/// each being compared with all the others.
struct DigestTable {
    private let slots: PageBuffer
    private let mask: Int
    private(set) var count = 0
    private let limit: Int

    static let maxPerKey = 8

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

    /// Stored keys are never 0: 0 marks an empty slot.
    private static func stored(_ key: UInt64) -> UInt64 { key | 1 }

    private static func pack(link: Int, source: UInt64) -> UInt64 {
        UInt64(link) << 52 | source / CheckpointFormat.pageSize
    }

    /// The first page recorded with `key` for which `matches` (the caller
    /// compares contents) says yes.
    func find(key: UInt64, matches: (_ link: Int, _ source: UInt64) throws -> Bool) rethrows -> (link: Int, source: UInt64)? {
        let key = Self.stored(key)
        var i = Int(truncatingIfNeeded: key >> 12) & mask
        var compared = 0
        while compared < Self.maxPerKey {
            let s = slot(i)
            if s[0] == 0 { return nil }
            if s[0] == key {
                let link = Int(s[1] >> 52)
                let source = (s[1] & (1 << 52 - 1)) * CheckpointFormat.pageSize
                if try matches(link, source) { return (link, source) }
                compared += 1
            }
            i = (i + 1) & mask
        }
        return nil
    }

    /// Records a page, unless the table is full or holds `maxPerKey` pages
    /// of its key already.
    mutating func insert(key: UInt64, link: Int, source: UInt64) {
        guard count < limit else { return }
        let key = Self.stored(key)
        var i = Int(truncatingIfNeeded: key >> 12) & mask
        var same = 0
        while slot(i)[0] != 0 {
            if slot(i)[0] == key {
                same += 1
                if same == Self.maxPerKey { return }
            }
            i = (i + 1) & mask
        }
        slot(i)[0] = key
        slot(i)[1] = Self.pack(link: link, source: source)
        count += 1
    }
}
