// The shape of a SegmentSet's tree, read from its node storage, for the
// tests that must reach a given height.

@testable import PGAlloc

extension SegmentSet {
    /// Levels in the tree: 1 for a lone root. Reads the node storage.
    var treeHeight: Int {
        var n = 0
        var height = 1
        while storage.hasChildren(n) {
            n = storage.child(n, 0)
            height += 1
        }
        return height
    }

    /// Nodes in the tree.
    var liveNodeCount: Int { storage.liveNodes }
}
