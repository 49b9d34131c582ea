import PGAlloc

/// Where restored pages are written: a restored memfd, an image file, or a
/// VMM's memory through its userfaultfd.
protocol LoadTarget: AnyObject, Sendable {
    /// Writes `bytes` at checkpoint address `address` (pages still wanted).
    func write(_ bytes: UnsafeRawBufferPointer, at address: UInt64) throws
}

/// A target that can also be read back: an eager restore copies a page
/// stored once to the other addresses that hold it.
protocol RestoreTarget: LoadTarget {
    /// Reads `buffer.count` bytes at checkpoint address `address`.
    func read(into buffer: UnsafeMutableRawBufferPointer, at address: UInt64) throws
}
