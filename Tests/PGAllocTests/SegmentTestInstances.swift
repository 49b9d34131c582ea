// The segment-set instances the SegmentSet tests run, each with what the
// model needs besides the set's own functions: comparing values, drawing
// random ones, and deriving changed ones.

@testable import PGAlloc

/// What the model tests need from a set instance besides the set's own
/// functions: value comparison and random values.
protocol SegmentModelFunctions: SegmentSetFunctions {
    static func same(_ a: Value, _ b: Value) -> Bool
    /// A random value for a new segment at `range`.
    static func randomValue(for range: FileRange, _ rng: inout SegmentTestRandom) -> Value
    /// A value derived from `value`, for `applyContiguous` and the subscript.
    static func changed(_ value: Value, salt: UInt64) -> Value
    static func describe(_ value: Value) -> String
    /// Whether two values can never merge, so every state is maximally merged.
    static var neverMerges: Bool { get }
}

extension SegmentModelFunctions {
    static var neverMerges: Bool { false }
}

/// Int values that merge when equal, drawn from a tiny set so that merges
/// are frequent: the policy of several instances that differ only in their
/// key space or gap tracking.
protocol EqualIntPolicy: SegmentModelFunctions where Value == Int {}

extension EqualIntPolicy {
    static func merge(_: FileRange, _ v1: Int, _: FileRange, _ v2: Int) -> Int? { v1 == v2 ? v1 : nil }
    static func split(_: FileRange, _ value: Int, at _: UInt64) -> (Int, Int) { (value, value) }

    static func same(_ a: Int, _ b: Int) -> Bool { a == b }
    static func randomValue(for _: FileRange, _ rng: inout SegmentTestRandom) -> Int { Int(rng.below(3)) }
    static func changed(_ value: Int, salt: UInt64) -> Int { Int(salt % 3) }
    static func describe(_ value: Int) -> String { "\(value)" }
}

/// Equal Int values merge, over the full 64-bit key space.
enum EqualIntFunctions: EqualIntPolicy {
    typealias Value = Int
}

/// A value with a tag and the file offset of the segment's first key; two
/// such values never merge. Splitting carries the offset across, so a wrong
/// split key or range shows up as a wrong offset. Its stride (16) differs
/// from the other values', which exercises the value moves.
struct TaggedOffset: Equatable, BitwiseCopyable, CustomStringConvertible {
    var tag: UInt32
    var offset: UInt64

    var description: String { "#\(tag)@0x\(String(offset, radix: 16))" }
}

enum NeverMergeFunctions: SegmentModelFunctions {
    typealias Value = TaggedOffset

    static func merge(_: FileRange, _: TaggedOffset, _: FileRange, _: TaggedOffset) -> TaggedOffset? { nil }
    static func split(_ range: FileRange, _ value: TaggedOffset, at key: UInt64) -> (TaggedOffset, TaggedOffset) {
        (value, TaggedOffset(tag: value.tag, offset: value.offset &+ (key - range.start)))
    }

    static var neverMerges: Bool { true }
    static func same(_ a: TaggedOffset, _ b: TaggedOffset) -> Bool { a == b }
    static func randomValue(for _: FileRange, _ rng: inout SegmentTestRandom) -> TaggedOffset {
        TaggedOffset(tag: UInt32(truncatingIfNeeded: rng.below(1000)), offset: rng.next())
    }
    static func changed(_ value: TaggedOffset, salt: UInt64) -> TaggedOffset {
        TaggedOffset(tag: UInt32(truncatingIfNeeded: salt), offset: value.offset)
    }
    static func describe(_ value: TaggedOffset) -> String { value.description }
}

/// gVisor's file-offset rule: a value is the offset of the segment's first
/// key, and neighbours merge when the second continues the first. The merge
/// therefore depends on the ranges passed to it, not just the values.
enum OffsetFunctions: SegmentModelFunctions {
    typealias Value = UInt64

    static func merge(_ r1: FileRange, _ v1: UInt64, _: FileRange, _ v2: UInt64) -> UInt64? {
        v1 &+ (r1.end - r1.start) == v2 ? v1 : nil
    }
    static func split(_ range: FileRange, _ value: UInt64, at key: UInt64) -> (UInt64, UInt64) {
        (value, value &+ (key - range.start))
    }

    static func same(_ a: UInt64, _ b: UInt64) -> Bool { a == b }
    /// Mostly the identity mapping (so touching segments continue each
    /// other), sometimes shifted by one key.
    static func randomValue(for range: FileRange, _ rng: inout SegmentTestRandom) -> UInt64 {
        range.start &+ (rng.chance(3, 4) ? 0 : 1)
    }
    static func changed(_ value: UInt64, salt: UInt64) -> UInt64 { value &+ salt % 2 }
    static func describe(_ value: UInt64) -> String { "@0x\(String(value, radix: 16))" }
}

extension RangeSetFunctions: SegmentModelFunctions {
    static func same(_: Void, _: Void) -> Bool { true }
    static func randomValue(for _: FileRange, _: inout SegmentTestRandom) {}
    static func changed(_: Void, salt _: UInt64) {}
    static func describe(_: Void) -> String { "()" }
}

extension UntrackedRangeSetFunctions: SegmentModelFunctions {
    static func same(_: Void, _: Void) -> Bool { true }
    static func randomValue(for _: FileRange, _: inout SegmentTestRandom) {}
    static func changed(_: Void, salt _: UInt64) {}
    static func describe(_: Void) -> String { "()" }
}

/// A key space that is not the default: `[0x1000, 0x3000)`.
enum WindowIntFunctions: EqualIntPolicy {
    typealias Value = Int

    static var minKey: UInt64 { 0x1000 }
    static var maxKey: UInt64 { 0x3000 }
}

/// A set that does not track gaps (so the large-enough-gap searches are
/// off limits), over a shifted key space `[16, UInt64.max)`.
enum UntrackedIntFunctions: EqualIntPolicy {
    typealias Value = Int

    static var minKey: UInt64 { 16 }
    static var tracksGaps: Bool { false }
}

/// Sixteen pages `[0, 16)` as the whole key space, Int values that merge
/// when equal: the exhaustive tests' instance.
enum SixteenPageFunctions: EqualIntPolicy {
    typealias Value = Int

    static var maxKey: UInt64 { 16 }
}

/// Sixteen pages `[0, 16)` of plain ranges.
enum SixteenPageRangeFunctions: SegmentModelFunctions {
    typealias Value = Void

    static var maxKey: UInt64 { 16 }

    static func merge(_: FileRange, _: Void, _: FileRange, _: Void) -> Void? { () }
    static func split(_: FileRange, _: Void, at _: UInt64) -> (Void, Void) { ((), ()) }

    static func same(_: Void, _: Void) -> Bool { true }
    static func randomValue(for _: FileRange, _: inout SegmentTestRandom) {}
    static func changed(_: Void, salt _: UInt64) {}
    static func describe(_: Void) -> String { "()" }
}
