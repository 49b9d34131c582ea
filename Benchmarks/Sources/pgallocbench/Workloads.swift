// W-churn, W-frag, W-save and the self-test, as ../shared/bench/WORKLOADS.md
// defines them and as gVisor's gvbench (shared/bench/gvisor/main.go) runs
// them, so that the two print comparable lines.

#if canImport(Glibc)
import Glibc
#endif
import BenchMemory
import BenchProtection
import Checkpoint
import PGAlloc
import Workloads

let pageSize: UInt64 = 4096

/// Whether the ranges are page-aligned, non-empty and pairwise disjoint.
func checkDisjoint(_ ranges: [FileRange]) -> Bool {
    let sorted = ranges.sorted { $0.start < $1.start }
    for (i, r) in sorted.enumerated() {
        if r.isEmpty || !r.isAligned(to: pageSize) {
            return false
        }
        if i > 0 && sorted[i - 1].end > r.start {
            return false
        }
    }
    return true
}

// MARK: - selftest

/// first(0) and the FNV-1a-64 digest of page(0) ... page(n - 1), which must
/// equal the values of WORKLOADS.md / gvbench.
func runSelftest(_ r: inout ResultLine, pages n: UInt64) -> Bool {
    let f0 = SplitMix64.first(0)
    r.set("first0", hex16(f0))
    var classes = [0, 0, 0, 0]
    for p in 0..<n {
        classes[Int(WSave.pageClass(p))] += 1
    }
    let digest = WSave.digest(pages: n)
    r.set("pages", n)
    r.set("pages_fnv1a64", hex16(digest))
    r.set("class_counts", classes.map(String.init).joined(separator: ","))
    let ok = f0 == 0xE220_A839_7B1D_CDAF && (n != 65536 || digest == 0x6D0F_1ADC_F660_C72E)
    r.set("verified", ok)
    return ok
}

// MARK: - W-churn

func runChurn(_ r: inout ResultLine, direction: AllocationDirection, ops: Int) throws {
    let mf = try MemoryFile()
    var g = SplitMix64(seed: 1)
    var live: [FileRange] = []
    live.reserveCapacity(4096)
    var allocs = 0
    var frees = 0
    let schedule = ThreadSchedule.beforeLoop()
    let cpuStart = ThreadSchedule.cpuNanoseconds()
    let start = nowNanoseconds()
    for _ in 0..<ops {
        let x = g.next()
        if live.count < 4096 && (live.isEmpty || x % 2 == 0) {
            let pages = 1 + g.next() % 16
            live.append(try mf.allocate(pages * pageSize, kind: .anonymous, direction: direction))
            allocs += 1
        } else {
            let i = Int(g.next() % UInt64(live.count))
            mf.decRef(live[i])
            live[i] = live[live.count - 1]
            live.removeLast()
            frees += 1
        }
    }
    let elapsed = nowNanoseconds() - start
    let cpu = ThreadSchedule.cpuNanoseconds() - cpuStart
    let scheduled = ThreadSchedule.afterLoop()
    r.set("ns_per_op", formatFixed6(Double(elapsed) / Double(ops)))
    r.set("file_size", mf.totalSize)
    r.set("ops", ops)
    r.set("allocs", allocs)
    r.set("frees", frees)
    r.set("live_final", live.count)
    r.set("loop_s", nanoseconds: elapsed)
    ThreadSchedule.record(&r, "loop", run: cpu, from: schedule, to: scheduled)
    r.set("verified", checkDisjoint(live))
    withExtendedLifetime(mf) {}
}

// MARK: - W-frag

func runFrag(_ r: inout ResultLine, direction: AllocationDirection, n: Int, m: Int) throws {
    let mf = try MemoryFile()
    var ones: [FileRange] = []
    ones.reserveCapacity(n)
    for _ in 0..<n {
        ones.append(try mf.allocate(pageSize, kind: .anonymous, direction: direction))
    }
    for i in stride(from: 1, to: n, by: 2) {
        mf.decRef(ones[i])
    }
    let t0 = nowNanoseconds()
    mf.waitForReclaim()
    r.set("reclaim_wait_s", nanoseconds: nowNanoseconds() - t0)

    var twos: [FileRange] = []
    twos.reserveCapacity(m)
    let schedule = ThreadSchedule.beforeLoop()
    let cpuStart = ThreadSchedule.cpuNanoseconds()
    let start = nowNanoseconds()
    for _ in 0..<m {
        twos.append(try mf.allocate(2 * pageSize, kind: .anonymous, direction: direction))
    }
    let elapsed = nowNanoseconds() - start
    let cpu = ThreadSchedule.cpuNanoseconds() - cpuStart
    let scheduled = ThreadSchedule.afterLoop()
    r.set("ns_per_op", formatFixed6(Double(elapsed) / Double(m)))
    r.set("file_size", mf.totalSize)
    r.set("ones", n)
    r.set("twos", m)
    r.set("loop_s", nanoseconds: elapsed)
    ThreadSchedule.record(&r, "loop", run: cpu, from: schedule, to: scheduled)
    var all = stride(from: 0, to: n, by: 2).map { ones[$0] }
    all.append(contentsOf: twos)
    r.set("verified", checkDisjoint(all))
    withExtendedLifetime(mf) {}
}

// MARK: - W-save

struct SaveParameters {
    var allocated: UInt64 = 8 << 30
    var touched: UInt64 = 1 << 30
    var checkpointDirectory = "/tmp"
    var threads = defaultThreadCount()
    var level = SaveOptions().level
    var frameSize = SaveOptions().frameSize
    /// Decommit the committed zero pages the save finds.
    var decommit = SaveOptions().decommitZeroPages
    var cold = false
    /// Restore lazily, and wait for the background load to finish.
    var lazy = false
    var keep = false
    /// Signing and encryption of the checkpoint (restored with the keys
    /// that open and trust it).
    var protection = Protection.none
}

/// The time of the first progress report of a save (the first frame
/// written), set from the saving thread.
final class FirstProgress: @unchecked Sendable {
    var at: UInt64 = 0
}

func runSave(_ r: inout ResultLine, _ p: SaveParameters, sampler: RssSampler) throws {
    let A = p.allocated
    let T = p.touched
    guard A > 0, T > 0, A % WSave.rangeBytes == 0, A % T == 0, T <= A, A / T <= WSave.pagesPerRange else {
        throw BenchError("W-save needs A a multiple of 64 MiB and T dividing A (A=\(A) T=\(T))")
    }
    let layout = WSave.Layout(allocated: A, touched: T)
    r.set("A", A)
    r.set("T", T)
    r.set("stride", layout.stride)

    // 1+2. Allocate and write.
    var src: MemoryFile? = try MemoryFile()
    let tw = nowNanoseconds()
    let ranges = try WSave.populate(src!, layout)
    r.set("write_s", nanoseconds: nowNanoseconds() - tw)
    r.set("written_bytes", layout.writtenBytes)
    r.set("src_committed_after_write", try src!.totalUsage())

    // 3. Update usage, save (the library fsyncs and renames).
    let tu = nowNanoseconds()
    try src!.updateUsage()
    r.set("update_usage_s", nanoseconds: nowNanoseconds() - tu)

    let path = p.checkpointDirectory + "/pgallocbench-\(getpid()).ckpt"
    var options = SaveOptions()
    options.level = p.level
    options.threads = p.threads
    options.frameSize = p.frameSize
    options.decommitZeroPages = p.decommit
    try p.protection.apply(to: &options)
    r.set("protection", p.protection.rawValue)
    let first = FirstProgress()
    options.progress = { _ in
        if first.at == 0 {
            first.at = nowNanoseconds()
        }
    }
    // What the process holds before save (the source's usage set among
    // it), to tell it from what save itself adds.
    let rssBeforeSave = procStatusKiB("RssAnon")
    r.set("rss_anon_before_save_kib", rssBeforeSave)
    let usageBeforeSave = src!.usageSetFootprint
    r.set("usage_set_segments_before_save", usageBeforeSave.segments)
    r.set("usage_set_bytes_before_save", usageBeforeSave.bytes)
    sampler.begin()
    let ts = nowNanoseconds()
    let report: SaveReport
    do {
        report = try src!.save(to: .path(path), options: options)
    } catch {
        _ = sampler.end()
        throw error
    }
    let saveEnd = nowNanoseconds()
    let saveRss = sampler.end()
    defer {
        if !p.keep {
            unlink(path)
        }
    }
    r.set("save_s", nanoseconds: saveEnd - ts)
    // Our save writes header and segment table before any page; there is
    // no hook for the first byte, so this stays NA (see
    // save_first_frame_s: the first frame written, from the progress
    // callback).
    r.set("save_first_write_s", "NA")
    r.set("save_first_frame_s", first.at == 0 ? "NA" : formatFixed6(Double(first.at - ts) / 1e9))
    var st = stat()
    guard stat(path, &st) == 0 else {
        throw BenchError("stat \(path): errno \(errno)")
    }
    r.set("ckpt_bytes", Int64(st.st_size))
    r.set("src_committed_after_save", try src!.totalUsage())
    r.set("save_frames", report.frames)
    r.set("save_stored_bytes", report.storedBytes)
    r.set("save_zero_bytes_dropped", report.zeroBytesDropped)
    r.set("save_zero_bytes_decommitted", report.zeroBytesDecommitted)
    r.set("save_scan", report.scan)
    // The usage set grows during save where zero pages are decommitted
    // (not with --keep-zero-pages): that is the file's own bookkeeping,
    // reported apart.
    let usageAfterSave = src!.usageSetFootprint
    r.set("usage_set_segments_after_save", usageAfterSave.segments)
    r.set("usage_set_bytes_after_save", usageAfterSave.bytes)
    r.set("added_rss_anon_save_kib", saveRss.peakKiB - rssBeforeSave - max(0, usageAfterSave.bytes - usageBeforeSave.bytes) / 1024)

    if p.cold {
        // Evict the (clean, fsync'd) checkpoint from the page cache.
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            let rc = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
            if rc != 0 {
                throw BenchError("posix_fadvise: \(rc)")
            }
            close(fd)
        }
    }

    // A restore does not need its source (verification regenerates the
    // expected pages): release it, as a restore in another process would
    // not have it, so that the restore's memory is its own.
    let sourceFileSize = src!.totalSize
    src = nil

    // Restore into a new MemoryFile.
    var restoreOptions = RestoreOptions()
    restoreOptions.threads = p.threads
    if p.lazy {
        restoreOptions.mode = .lazy(LazyRestoreOptions())
    }
    try p.protection.apply(to: &restoreOptions)
    let rssBeforeRestore = procStatusKiB("RssAnon")
    r.set("rss_anon_before_restore_kib", rssBeforeRestore)
    sampler.begin()
    let tr = nowNanoseconds()
    let dst: MemoryFile
    do {
        dst = try MemoryFile.restore(from: .path(path), options: restoreOptions)
        if p.lazy {
            r.set("lazy_usable_s", nanoseconds: nowNanoseconds() - tr)
            try dst.waitUntilLoaded()
        }
    } catch {
        _ = sampler.end()
        throw error
    }
    let restoreEnd = nowNanoseconds()
    let restoreRss = sampler.end()
    r.set("restore_s", nanoseconds: restoreEnd - tr)
    let restoredUsage = dst.usageSetFootprint
    r.set("usage_set_segments_restored", restoredUsage.segments)
    r.set("usage_set_bytes_restored", restoredUsage.bytes)
    r.set("added_rss_anon_restore_kib", restoreRss.peakKiB - rssBeforeRestore - restoredUsage.bytes / 1024)
    r.set("restored_committed_bytes", try dst.totalUsage())
    r.set("file_size", dst.totalSize)

    // 4. Verify with pread on the restored memfd (holes read as zero
    // without being committed).
    let tv = nowNanoseconds()
    let bad = try WSave.verify(fd: dst.fileDescriptor, ranges: ranges, layout)
    let sizeOK = dst.totalSize == sourceFileSize
    r.set("verify_s", nanoseconds: nowNanoseconds() - tv)
    r.set("verified", bad == 0 && sizeOK)
    if bad != 0 {
        r.set("bad_pages", bad)
    }
    if !sizeOK {
        r.set("src_file_size", sourceFileSize)
    }
    r.set("restored_committed_after_verify", try dst.totalUsage())
    r.set("cold", p.cold)
    r.set("lazy", p.lazy)
    r.set("decommit", p.decommit)
    r.set("peak_rss_anon_kib", max(saveRss.peakKiB, restoreRss.peakKiB))
    r.set("peak_rss_anon_save_kib", saveRss.peakKiB)
    r.set("peak_rss_anon_restore_kib", restoreRss.peakKiB)
    r.set("rss_samples_save", saveRss.samples)
    r.set("rss_samples_restore", restoreRss.samples)
    r.set("threads", p.threads)
    r.set("level", Int(p.level))
    r.set("frame_size", p.frameSize)
    withExtendedLifetime((src, dst)) {}
}
