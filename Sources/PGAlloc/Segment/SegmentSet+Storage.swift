#if canImport(Glibc)
import Glibc
#endif
import CLinuxShim

/// The minimum degree of the B-tree: every node but the root holds at least
/// `minDegree - 1` segments, and every internal node but the root at least
/// `minDegree` children. The seed's sets use 10 as well.
@usableFromInline let segmentMinDegree = 10
@usableFromInline let segmentMaxDegree = 2 * segmentMinDegree
/// Segments a node can hold.
@usableFromInline let segmentMaxKeys = segmentMaxDegree - 1

/// The fixed-size part of a node; keys, values and children live in
/// parallel arrays indexed by node number.
@usableFromInline
struct SegmentNodeHeader {
    /// Segments in the node; an internal node has one more child.
    @usableFromInline var count: Int32
    /// Position of this node in its parent's children.
    @usableFromInline var parentIndex: Int32
    /// The parent node, or -1 for the root (node 0). For a free node, the
    /// next free node.
    @usableFromInline var parent: Int32
    @usableFromInline var hasChildren: Bool
    /// The longest gap in the node's subtree: for a leaf, over its
    /// `count + 1` gaps (the outer two may be shared with ancestors); for an
    /// internal node, over its children.
    @usableFromInline var maxGap: UInt64
}

/// Node storage of a `SegmentSet`: an arena of nodes addressed by number,
/// so that iterators are plain integers and moving a value costs a
/// `memmove`. Node 0 is always the root.
///
/// This type and its extensions are the only code in the segment package
/// that touches raw pointers. Its fields opt out of dynamic exclusivity
/// checks, which cost more than the tree operations themselves: the set is
/// a value type whose mutations go through `makeUnique()`, so overlapping
/// accesses cannot happen.
@usableFromInline
final class SegmentSetStorage<Functions: SegmentSetFunctions> {
    @usableFromInline typealias Value = Functions.Value

    @exclusivity(unchecked) @usableFromInline var headers: UnsafeMutablePointer<SegmentNodeHeader>
    @exclusivity(unchecked) @usableFromInline var keys: UnsafeMutablePointer<FileRange>
    @exclusivity(unchecked) @usableFromInline var values: UnsafeMutablePointer<Value>
    @exclusivity(unchecked) @usableFromInline var children: UnsafeMutablePointer<Int32>
    /// For each child position of an internal node, that child's longest
    /// gap (a copy of its header's `maxGap`), so that a search scans one
    /// contiguous array per level rather than every child's header. Kept
    /// only when the set tracks gaps.
    @exclusivity(unchecked) @usableFromInline var childGaps: UnsafeMutablePointer<UInt64>
    /// Nodes the arrays have room for.
    @exclusivity(unchecked) @usableFromInline var capacity: Int
    /// Nodes `[0, used)` have been handed out at least once.
    @exclusivity(unchecked) @usableFromInline var used: Int
    /// Head of the list of free nodes below `used`, chained through
    /// `parent`; -1 if none.
    @exclusivity(unchecked) @usableFromInline var freeHead: Int32
    /// Nodes in the tree.
    @exclusivity(unchecked) @usableFromInline var liveNodes: Int

    @usableFromInline
    init(capacity: Int = 1) {
        precondition(capacity >= 1)
        self.capacity = capacity
        headers = SegmentSetStorage.allocateArray(capacity)
        keys = SegmentSetStorage.allocateArray(capacity * segmentMaxKeys)
        values = SegmentSetStorage.allocateArray(capacity * segmentMaxKeys)
        children = SegmentSetStorage.allocateArray(capacity * segmentMaxDegree)
        childGaps = SegmentSetStorage.allocateArray(capacity * segmentMaxDegree)
        used = 1
        freeHead = -1
        liveNodes = 1
        headers[0] = SegmentNodeHeader(
            count: 0, parentIndex: 0, parent: -1, hasChildren: false,
            maxGap: Functions.maxKey &- Functions.minKey)
    }

    /// Bytes a node takes across the parallel arrays.
    @usableFromInline static var bytesPerNode: Int {
        MemoryLayout<SegmentNodeHeader>.stride + segmentMaxKeys * (MemoryLayout<FileRange>.stride + MemoryLayout<Value>.stride)
            + segmentMaxDegree * (MemoryLayout<Int32>.stride + MemoryLayout<UInt64>.stride)
    }

    deinit {
        SegmentSetStorage.release(headers, capacity)
        SegmentSetStorage.release(keys, capacity * segmentMaxKeys)
        SegmentSetStorage.release(values, capacity * segmentMaxKeys)
        SegmentSetStorage.release(children, capacity * segmentMaxDegree)
        SegmentSetStorage.release(childGaps, capacity * segmentMaxDegree)
    }

    /// Arrays of at least this many bytes are mapped on their own rather
    /// than taken from malloc. malloc serves even large blocks from its
    /// heap once a large block has been freed (its mmap threshold rises),
    /// and every doubling then leaves the old array behind as free heap it
    /// keeps: 9 MB at the end of a 16 GiB restore (W-save dense). A
    /// mapping grows with mremap, in place or by moving its pages, and is
    /// given back whole.
    private static var mappedArrayBytes: Int { 1 << 20 }

    private static func isMapped<T>(_ count: Int, _: T.Type) -> Bool {
        count * MemoryLayout<T>.stride >= mappedArrayBytes
    }

    /// Room for `count` elements of a bitwise-copyable type: from malloc,
    /// or mapped (`mappedArrayBytes`).
    private static func allocateArray<T>(_ count: Int) -> UnsafeMutablePointer<T> {
        precondition(MemoryLayout<T>.alignment <= 16, "SegmentSet: values aligned beyond 16 bytes")
        let bytes = max(1, count * MemoryLayout<T>.stride)
        if isMapped(count, T.self) {
            let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            guard let p, p != MAP_FAILED else {
                fatalError("SegmentSet: cannot map \(bytes) bytes for \(count) elements: \(HostError.last("mmap"))")
            }
            return p.bindMemory(to: T.self, capacity: count)
        }
        guard let p = malloc(bytes) else {
            fatalError("SegmentSet: out of memory for \(count) elements")
        }
        return p.bindMemory(to: T.self, capacity: count)
    }

    private static func release<T>(_ p: UnsafeMutablePointer<T>, _ count: Int) {
        if isMapped(count, T.self) {
            munmap(p, count * MemoryLayout<T>.stride)
        } else {
            free(p)
        }
    }

    /// A deep copy, for copy-on-write.
    @usableFromInline
    func copy() -> SegmentSetStorage {
        let other = SegmentSetStorage(capacity: capacity)
        memcpy(other.headers, headers, used * MemoryLayout<SegmentNodeHeader>.stride)
        memcpy(other.keys, keys, used * segmentMaxKeys * MemoryLayout<FileRange>.stride)
        memcpy(other.values, values, used * segmentMaxKeys * MemoryLayout<Value>.stride)
        memcpy(other.children, children, used * segmentMaxDegree * MemoryLayout<Int32>.stride)
        memcpy(other.childGaps, childGaps, used * segmentMaxDegree * MemoryLayout<UInt64>.stride)
        other.used = used
        other.freeHead = freeHead
        other.liveNodes = liveNodes
        return other
    }

    /// Drops every node but an empty root; keeps the arrays.
    @usableFromInline
    func reset() {
        used = 1
        freeHead = -1
        liveNodes = 1
        headers[0] = SegmentNodeHeader(
            count: 0, parentIndex: 0, parent: -1, hasChildren: false,
            maxGap: Functions.maxKey &- Functions.minKey)
    }

    /// A new node with the given parent linkage and no segments.
    @usableFromInline
    func allocateNode(parent: Int, parentIndex: Int, hasChildren: Bool) -> Int {
        let n: Int
        if freeHead >= 0 {
            n = Int(freeHead)
            freeHead = headers[n].parent
        } else {
            if used == capacity {
                grow()
            }
            n = used
            used += 1
        }
        liveNodes += 1
        headers[n] = SegmentNodeHeader(
            count: 0, parentIndex: Int32(truncatingIfNeeded: parentIndex),
            parent: Int32(truncatingIfNeeded: parent), hasChildren: hasChildren, maxGap: 0)
        return n
    }

    @usableFromInline
    func freeNode(_ n: Int) {
        precondition(n != 0, "SegmentSet: the root node cannot be freed")
        headers[n].parent = freeHead
        headers[n].count = -1
        freeHead = Int32(truncatingIfNeeded: n)
        liveNodes -= 1
    }

    private func grow() {
        let newCapacity = capacity * 2
        precondition(newCapacity <= Int(Int32.max), "SegmentSet: more than 2^31 nodes")
        headers = reallocate(headers, from: capacity, to: newCapacity)
        keys = reallocate(keys, from: capacity * segmentMaxKeys, to: newCapacity * segmentMaxKeys)
        values = reallocate(values, from: capacity * segmentMaxKeys, to: newCapacity * segmentMaxKeys)
        children = reallocate(children, from: capacity * segmentMaxDegree, to: newCapacity * segmentMaxDegree)
        childGaps = reallocate(childGaps, from: capacity * segmentMaxDegree, to: newCapacity * segmentMaxDegree)
        capacity = newCapacity
    }

    /// Grows an array: with realloc while small; into a mapping of its own
    /// once large, which then grows by remapping its pages, so growing a big
    /// set neither copies it nor briefly needs room for both the old and
    /// the new array.
    private func reallocate<T>(_ old: UnsafeMutablePointer<T>, from oldCount: Int, to newCount: Int) -> UnsafeMutablePointer<T> {
        let stride = MemoryLayout<T>.stride
        switch (Self.isMapped(oldCount, T.self), Self.isMapped(newCount, T.self)) {
        case (false, false):
            guard let p = realloc(old, newCount * stride) else {
                fatalError("SegmentSet: out of memory growing to \(newCount) elements")
            }
            return p.bindMemory(to: T.self, capacity: newCount)
        case (false, true):
            let p: UnsafeMutablePointer<T> = Self.allocateArray(newCount)
            memcpy(p, old, oldCount * stride)
            free(old)
            return p
        case (true, _):
            let p = pg_mremap_maymove(old, oldCount * stride, newCount * stride)
            guard let p, p != MAP_FAILED else {
                fatalError("SegmentSet: cannot grow a mapping to \(newCount) elements: \(HostError.last("mremap"))")
            }
            return p.bindMemory(to: T.self, capacity: newCount)
        }
    }

    // MARK: Element access

    @inline(__always) @usableFromInline
    func count(_ n: Int) -> Int { Int(headers[n].count) }

    @inline(__always) @usableFromInline
    func hasChildren(_ n: Int) -> Bool { headers[n].hasChildren }

    @inline(__always) @usableFromInline
    func parent(_ n: Int) -> Int { Int(headers[n].parent) }

    @inline(__always) @usableFromInline
    func parentIndex(_ n: Int) -> Int { Int(headers[n].parentIndex) }

    @inline(__always) @usableFromInline
    func key(_ n: Int, _ i: Int) -> FileRange { keys[n &* segmentMaxKeys &+ i] }

    @inline(__always) @usableFromInline
    func setKey(_ n: Int, _ i: Int, _ k: FileRange) { keys[n &* segmentMaxKeys &+ i] = k }

    @inline(__always) @usableFromInline
    func value(_ n: Int, _ i: Int) -> Value { values[n &* segmentMaxKeys &+ i] }

    @inline(__always) @usableFromInline
    func valuePointer(_ n: Int, _ i: Int) -> UnsafeMutablePointer<Value> { values + (n &* segmentMaxKeys &+ i) }

    @inline(__always) @usableFromInline
    func setValue(_ n: Int, _ i: Int, _ v: Value) { (values + (n &* segmentMaxKeys &+ i)).initialize(to: v) }

    @inline(__always) @usableFromInline
    func child(_ n: Int, _ i: Int) -> Int { Int(children[n &* segmentMaxDegree &+ i]) }

    /// Sets child `i` of `n` to `c` and links `c` back to `n`.
    @inline(__always) @usableFromInline
    func adopt(_ n: Int, _ i: Int, _ c: Int) {
        children[n &* segmentMaxDegree &+ i] = Int32(truncatingIfNeeded: c)
        headers[c].parent = Int32(truncatingIfNeeded: n)
        headers[c].parentIndex = Int32(truncatingIfNeeded: i)
        if Functions.tracksGaps {
            childGaps[n &* segmentMaxDegree &+ i] = headers[c].maxGap
        }
    }

    /// The longest gap under child `i` of internal node `n`.
    @inline(__always) @usableFromInline
    func childGap(_ n: Int, _ i: Int) -> UInt64 { childGaps[n &* segmentMaxDegree &+ i] }

    /// Sets the longest gap recorded for `n`, and its copy in the parent.
    @inline(__always) @usableFromInline
    func setMaxGap(_ n: Int, _ gap: UInt64) {
        headers[n].maxGap = gap
        let p = Int(headers[n].parent)
        if p >= 0 {
            childGaps[p &* segmentMaxDegree &+ Int(headers[n].parentIndex)] = gap
        }
    }

    // MARK: Bulk moves within and between nodes (memmove: ranges may overlap)

    /// Moves `count` keys and values from (`src`, `from`) to (`dst`, `to`).
    @inline(__always) @usableFromInline
    func moveSegments(from src: Int, _ from: Int, to dst: Int, _ to: Int, count: Int) {
        guard count > 0 else { return }
        memmove(keys + (dst &* segmentMaxKeys &+ to), keys + (src &* segmentMaxKeys &+ from),
                count * MemoryLayout<FileRange>.stride)
        memmove(values + (dst &* segmentMaxKeys &+ to), values + (src &* segmentMaxKeys &+ from),
                count * MemoryLayout<Value>.stride)
    }

    /// Moves `count` child links from (`src`, `from`) to (`dst`, `to`),
    /// without relinking the children to their new parent.
    @inline(__always) @usableFromInline
    func moveChildren(from src: Int, _ from: Int, to dst: Int, _ to: Int, count: Int) {
        guard count > 0 else { return }
        memmove(children + (dst &* segmentMaxDegree &+ to), children + (src &* segmentMaxDegree &+ from),
                count * MemoryLayout<Int32>.stride)
    }

    /// Points children `[from, to)` of `n` back at `n` with their
    /// positions, and copies their longest gaps into `n`.
    @inline(__always) @usableFromInline
    func relinkChildren(_ n: Int, from: Int, to: Int) {
        var i = from
        while i < to {
            let c = child(n, i)
            headers[c].parent = Int32(truncatingIfNeeded: n)
            headers[c].parentIndex = Int32(truncatingIfNeeded: i)
            if Functions.tracksGaps {
                childGaps[n &* segmentMaxDegree &+ i] = headers[c].maxGap
            }
            i += 1
        }
    }
}
