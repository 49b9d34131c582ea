extension RandomAccessCollection where Index == Int {
    /// The first index whose element is not `before` (binary search): the
    /// elements must be those that are, then those that are not.
    func partitionPoint(_ before: (Element) throws -> Bool) rethrows -> Int {
        var lo = startIndex
        var hi = endIndex
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            if try before(self[mid]) { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
