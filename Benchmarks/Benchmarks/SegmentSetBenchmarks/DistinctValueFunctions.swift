import PGAlloc

/// A set instance whose segments never merge: `Int` values that merge only
/// when equal, and the benchmarks give every segment its own value. Adjacent
/// segments may touch, as in pgalloc's usage set, where neighbouring
/// allocations of different kinds or reference counts stay apart.
enum DistinctValueFunctions: SegmentSetFunctions {
    typealias Value = Int

    static func merge(_: FileRange, _ value1: Int, _: FileRange, _ value2: Int) -> Int? {
        value1 == value2 ? value1 : nil
    }

    static func split(_: FileRange, _ value: Int, at _: UInt64) -> (Int, Int) {
        (value, value)
    }
}

typealias DistinctValueSet = SegmentSet<DistinctValueFunctions>
