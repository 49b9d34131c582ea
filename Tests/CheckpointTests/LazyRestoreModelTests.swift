import Foundation
import XCTest
@testable import Checkpoint
@testable import PGAlloc
import Synchronization
import TestSupport
import Workloads

/// A randomized model test of lazy restores: threads interleave API reads
/// and writes, raw reads and writes through the chunk mappings, decRefs and
/// decommits while the loader runs; the same operations, applied in order
/// to an eagerly restored file, must leave the same contents, usage set and
/// accounting. Each thread works on pages of its own, so the final state
/// does not depend on the interleaving.
final class LazyRestoreModelTests: XCTestCase {
    enum Op {
        case apiRead(UInt64)
        case apiWrite(UInt64, UInt64)
        case rawRead(UInt64)
        case rawWrite(UInt64, UInt64)
        case decommit(UInt64)
        case decRef(UInt64)
    }

    /// Operations for each of `threads` threads on the pages of `ranges`:
    /// thread `t` owns the pages whose number is `t` modulo `threads`; a
    /// page freed by a decRef is not used again.
    func makeOps(seed: UInt64, ranges: [FileRange], threads: Int, count: Int) -> [[Op]] {
        var rng = SplitMix64(seed: seed)
        var pages: [[UInt64]] = Array(repeating: [], count: threads)
        for r in ranges {
            for p in stride(from: r.start, to: r.end, by: 4096) {
                pages[Int((p / 4096) % UInt64(threads))].append(p)
            }
        }
        var ops: [[Op]] = Array(repeating: [], count: threads)
        for t in 0..<threads {
            var freed = Set<UInt64>()
            for _ in 0..<count {
                var page: UInt64
                repeat {
                    page = pages[t][Int(rng.next() % UInt64(pages[t].count))]
                } while freed.contains(page)
                let value = rng.next()
                switch rng.next() % 10 {
                case 0, 1: ops[t].append(.apiRead(page))
                case 2, 3: ops[t].append(.apiWrite(page, value))
                case 4, 5: ops[t].append(.rawRead(page))
                case 6, 7: ops[t].append(.rawWrite(page, value))
                case 8: ops[t].append(.decommit(page))
                default:
                    ops[t].append(.decRef(page))
                    freed.insert(page)
                }
            }
        }
        return ops
    }

    /// Runs `op` on `file`; raw access goes through `chunks`.
    static func apply(_ op: Op, to file: MemoryFile, chunks: [(base: UInt, offset: UInt64, length: UInt64)]) throws {
        func raw(_ page: UInt64) -> UnsafeMutableRawPointer {
            let c = chunks.first { page >= $0.offset && page < $0.offset + $0.length }!
            return UnsafeMutableRawPointer(bitPattern: c.base + UInt(page - c.offset))!
        }
        switch op {
        case .apiRead(let p):
            try file.forEachMappedSlice(FileRange(start: p, end: p + 4096)) { slice in
                _ = slice.load(fromByteOffset: 8, as: UInt64.self)
            }
        case .apiWrite(let p, let v):
            try file.forEachMappedSlice(FileRange(start: p, end: p + 4096)) { slice in
                slice.storeBytes(of: v, toByteOffset: 16, as: UInt64.self)
            }
        case .rawRead(let p):
            _ = raw(p).load(fromByteOffset: 24, as: UInt64.self)
        case .rawWrite(let p, let v):
            raw(p).storeBytes(of: v, toByteOffset: 32, as: UInt64.self)
        case .decommit(let p):
            try file.decommit(FileRange(start: p, end: p + 4096))
        case .decRef(let p):
            file.decRef(FileRange(start: p, end: p + 4096))
        }
    }

    func chunks(_ file: MemoryFile) throws -> [(base: UInt, offset: UInt64, length: UInt64)] {
        var out: [(UInt, UInt64, UInt64)] = []
        try file.forEachChunkMapping { out.append((UInt(bitPattern: $0), $1, UInt64($2))) }
        return out.map { (base: $0.0, offset: $0.1, length: $0.2) }
    }

    func testRandomOperationsWhileLoadingEqualAnEagerRestore() throws {
        let seed = testSeed(0x1A27, "lazy restore model")
        let dir = try ScratchDirectory(for: self)
        let path = dir.path("c")
        let (_, ranges) = try makeWSaveCheckpoint(path, allocated: 128 << 20, touched: 64 << 20, frameSize: 128 << 10)
        let threads = 3
        for round in 0..<3 {
            let ops = makeOps(seed: seed &+ UInt64(round), ranges: ranges, threads: threads, count: 400)
            var lazyOptions = LazyRestoreOptions()
            lazyOptions.loaderThreads = 2
            // Round 0 loads only what the threads touch: every access finds
            // its page unloaded.
            lazyOptions.backgroundLoading = round != 0
            var options = RestoreOptions()
            options.mode = .lazy(lazyOptions)
            let lazy = try MemoryFile.restore(from: .path(path), options: options)
            defer { lazy.destroy() }
            let lazyChunks = try chunks(lazy)
            let errors = StateLock<[String]>([])
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                for op in ops[t] {
                    do {
                        try Self.apply(op, to: lazy, chunks: lazyChunks)
                    } catch {
                        errors.withLock { $0.append("\(op): \(error)") }
                    }
                }
            }
            XCTAssertEqual(errors.withLock { $0 }, [], "seed \(seed) round \(round)")
            try lazy.waitUntilLoaded()

            let eager = try MemoryFile.restore(from: .path(path))
            defer { eager.destroy() }
            let eagerChunks = try chunks(eager)
            for t in 0..<threads {
                for op in ops[t] {
                    try Self.apply(op, to: eager, chunks: eagerChunks)
                }
            }
            lazy.waitForReclaim()
            eager.waitForReclaim()
            XCTAssertTrue(
                try sameContents(lazy.fileDescriptor, eager.fileDescriptor, in: FileRange(start: 0, end: eager.totalSize)),
                "seed \(seed) round \(round): contents differ")
            XCTAssertEqual(lazy.description, eager.description, "seed \(seed) round \(round): usage sets differ")
            XCTAssertEqual(lazy.accounting.snapshot(), eager.accounting.snapshot(), "seed \(seed) round \(round): accounting differs")
            XCTAssertFalse(lazy.isLoading)
        }
    }
}
