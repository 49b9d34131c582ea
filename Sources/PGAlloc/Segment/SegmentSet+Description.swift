// Readable dumps of a set, for trap messages and debugging.

extension SegmentSet: CustomStringConvertible, CustomDebugStringConvertible {
    /// One line per segment: `[0x1000, 0x3000) => value`.
    public var description: String {
        var out = ""
        var s = storage.lowerBoundSegment(Functions.minKey)
        if !s.ok {
            return "(empty set)"
        }
        while s.ok {
            out += "\(storage.key(s.n, s.i)) => \(storage.value(s.n, s.i))\n"
            s = storage.nextSegment(ofSegment: s)
        }
        return out
    }

    /// The tree: every node with its segments and recorded longest gap.
    public var debugDescription: String {
        var out = ""
        dumpNode(0, prefix: "", into: &out)
        return out
    }

    private func dumpNode(_ n: Int, prefix: String, into out: inout String) {
        let c = storage.count(n)
        out += "\(prefix)node \(n): \(c) segments, maxGap 0x\(String(storage.maxGap(n), radix: 16))\n"
        for i in 0...c {
            if storage.hasChildren(n) {
                dumpNode(storage.child(n, i), prefix: prefix + "  ", into: &out)
            }
            if i < c {
                out += "\(prefix)- \(i): \(storage.key(n, i)) => \(storage.value(n, i))\n"
            }
        }
    }
}
