#if canImport(Glibc)
import Glibc
#endif
import PGAlloc

/// Page contents and the W-save workload of ../shared/bench/WORKLOADS.md,
/// bit for bit.
public enum WSave {
    public static let pageSize = 4096
    /// Pages per 64 MiB range.
    public static let pagesPerRange: UInt64 = 16384
    public static let rangeBytes: UInt64 = 64 << 20

    /// Which of the four classes page `p` is (0 zero, 1 incompressible,
    /// 2 text, 3 mostly zero).
    @inline(__always)
    public static func pageClass(_ p: UInt64) -> UInt64 {
        SplitMix64.first(p) % 4
    }

    /// Writes `page(p)` into the 4096 bytes at `destination`.
    public static func fillPage(_ destination: UnsafeMutableRawPointer, _ p: UInt64) {
        let words = destination.assumingMemoryBound(to: UInt64.self)
        switch pageClass(p) {
        case 0:
            memset(destination, 0, pageSize)
        case 1:
            var g = SplitMix64(seed: p ^ 0xA5A5_A5A5_A5A5_A5A5)
            for i in 0..<512 {
                words[i] = g.next().littleEndian
            }
        case 2:
            let bytes = destination.assumingMemoryBound(to: UInt8.self)
            let shift = Int(p % 26)
            for i in 0..<pageSize {
                bytes[i] = i % 64 >= 48 ? 0x20 : UInt8(0x61 + (i + shift) % 26)
            }
        default:
            memset(destination, 0, pageSize)
            var g = SplitMix64(seed: p ^ 0x5A5A_5A5A_5A5A_5A5A)
            for _ in 0..<8 {
                let w = g.next()
                let v = g.next()
                words[Int(w % 512)] = v.littleEndian
            }
        }
    }

    /// The W-save layout for allocated bytes `allocated` and touched bytes
    /// `touched`: `allocated / 64 MiB` ranges, every `stride`-th page
    /// written.
    public struct Layout: Sendable, Hashable {
        public var allocated: UInt64
        public var touched: UInt64

        public init(allocated: UInt64, touched: UInt64) {
            precondition(allocated % WSave.rangeBytes == 0 && touched > 0 && allocated % touched == 0,
                         "W-save: A must be a multiple of 64 MiB and of T")
            self.allocated = allocated
            self.touched = touched
        }

        /// Pages between written pages.
        public var stride: UInt64 { allocated / touched }
        public var ranges: Int { Int(allocated / WSave.rangeBytes) }

        /// Bytes the workload writes: every stride-th page of each range
        /// (`touched` when the stride is at most a range's pages).
        public var writtenBytes: UInt64 {
            let perRange = (WSave.pagesPerRange + stride - 1) / stride
            return UInt64(ranges) * perRange * UInt64(WSave.pageSize)
        }
    }

    /// Allocates the W-save ranges (kind anonymous, in order) and writes
    /// their pages through the mappings; returns the ranges.
    public static func populate(_ file: MemoryFile, _ layout: Layout) throws -> [FileRange] {
        var ranges: [FileRange] = []
        for _ in 0..<layout.ranges {
            ranges.append(try file.allocate(rangeBytes, kind: .anonymous))
        }
        let stride = layout.stride
        for (a, range) in ranges.enumerated() {
            // Page number within the range of the first page of each slice
            // (a range crossing a chunk boundary comes in two slices).
            var first: UInt64 = 0
            try file.forEachMappedSlice(range) { slice in
                let pages = UInt64(slice.count / pageSize)
                var j = (first + stride - 1) / stride * stride
                while j < first + pages {
                    fillPage(slice.baseAddress! + Int(j - first) * pageSize, UInt64(a) * pagesPerRange + j)
                    j += stride
                }
                first += pages
            }
        }
        return ranges
    }

    /// Writes the W-save content into the regular file `fd` (pages through
    /// pwrite, holes elsewhere), `allocated` bytes long.
    public static func writeImage(fd: Int32, _ layout: Layout) throws {
        _ = try retryingInterrupts("ftruncate") { ftruncate(fd, off_t(layout.allocated)) }
        let page = UnsafeMutableRawPointer.allocate(byteCount: pageSize, alignment: pageSize)
        defer { page.deallocate() }
        for a in 0..<UInt64(layout.ranges) {
            var j: UInt64 = 0
            while j < pagesPerRange {
                let p = a * pagesPerRange + j
                fillPage(page, p)
                // Zero-class pages are written too: they are data a user
                // wrote, even if they hold nothing.
                _ = try retryingInterrupts("pwrite") { pwrite(fd, page, pageSize, off_t(p * UInt64(pageSize))) }
                j += layout.stride
            }
        }
    }

    /// Checks, with pread (which does not commit holes), that `fd` holds
    /// the W-save content of `ranges` (range `a` at `ranges[a]`): written
    /// pages equal `page(p)` (or, for the pages in `rewritten`, what
    /// `rewrite` wrote), all others zero. Returns the number of pages that
    /// differ.
    public static func verify(fd: Int32, ranges: [FileRange], _ layout: Layout, rewritten: (pages: Set<UInt64>, seed: UInt64)? = nil) throws -> Int {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: Int(rangeBytes), alignment: pageSize)
        let expected = UnsafeMutableRawPointer.allocate(byteCount: pageSize, alignment: pageSize)
        defer {
            buffer.deallocate()
            expected.deallocate()
        }
        var bad = 0
        for (a, range) in ranges.enumerated() {
            var done = 0
            while done < Int(rangeBytes) {
                let n = try retryingInterrupts("pread") {
                    pread(fd, buffer + done, Int(rangeBytes) - done, off_t(range.start) + off_t(done))
                }
                if n == 0 {
                    memset(buffer + done, 0, Int(rangeBytes) - done)
                    break
                }
                done += n
            }
            for j in 0..<pagesPerRange {
                let got = buffer + Int(j) * pageSize
                let address = range.start + j * UInt64(pageSize)
                if let rewritten, rewritten.pages.contains(address) {
                    fillRewritten(expected, address, seed: rewritten.seed)
                    if memcmp(got, expected, pageSize) != 0 {
                        bad += 1
                    }
                } else if j % layout.stride == 0 {
                    fillPage(expected, UInt64(a) * pagesPerRange + j)
                    if memcmp(got, expected, pageSize) != 0 {
                        bad += 1
                    }
                } else if !isZero(got, pageSize) {
                    bad += 1
                }
            }
        }
        return bad
    }

    private static func isZero(_ p: UnsafeRawPointer, _ n: Int) -> Bool {
        let w = p.assumingMemoryBound(to: UInt64.self)
        for i in 0..<(n / 8) where w[i] != 0 {
            return false
        }
        return true
    }

    /// Writes new random contents (from `seed` and the page's address) into
    /// `share` of the written pages of `ranges` (every page whose index
    /// among the written pages is `phase` modulo `1 / share`), through the
    /// mappings: the "rewrite 1% / 10%" step of the incremental benchmarks.
    /// Returns the addresses rewritten.
    public static func rewrite(
        _ file: MemoryFile, ranges: [FileRange], _ layout: Layout, share: Double, seed: UInt64, phase: UInt64 = 0
    ) throws -> [UInt64] {
        precondition(share > 0 && share <= 1, "WSave.rewrite: share \(share)")
        let every = max(1, UInt64((1 / share).rounded()))
        var out: [UInt64] = []
        var n: UInt64 = 0
        for range in ranges {
            var j: UInt64 = 0
            while j < pagesPerRange {
                if n % every == phase % every {
                    out.append(range.start + j * UInt64(pageSize))
                }
                n += 1
                j += layout.stride
            }
        }
        for address in out {
            try file.forEachMappedSlice(FileRange(start: address, end: address + UInt64(pageSize))) { slice in
                fillRewritten(slice.baseAddress!, address, seed: seed)
            }
        }
        return out
    }

    /// The contents `rewrite` gives the page at `address`.
    public static func fillRewritten(_ destination: UnsafeMutableRawPointer, _ address: UInt64, seed: UInt64) {
        let words = destination.assumingMemoryBound(to: UInt64.self)
        var g = SplitMix64(seed: address ^ seed ^ 0x3C3C_3C3C_3C3C_3C3C)
        for i in 0..<512 {
            words[i] = g.next().littleEndian
        }
    }

    /// FNV-1a-64 of page(0) ... page(n - 1) concatenated: the harnesses'
    /// cross-check (`0x6D0F1ADCF660C72E` for n = 65536).
    public static func digest(pages n: UInt64) -> UInt64 {
        let page = UnsafeMutableRawPointer.allocate(byteCount: pageSize, alignment: pageSize)
        defer { page.deallocate() }
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for p in 0..<n {
            fillPage(page, p)
            let b = page.assumingMemoryBound(to: UInt8.self)
            for i in 0..<pageSize {
                h = (h ^ UInt64(b[i])) &* 0x0000_0100_0000_01B3
            }
        }
        return h
    }
}
