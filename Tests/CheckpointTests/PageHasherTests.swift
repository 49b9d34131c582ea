import Dispatch
import Foundation
import Synchronization
import Workloads
import XCTest

@testable import Checkpoint

/// The multi-buffer hasher gives, for every page, the SHA-256 swift-crypto
/// gives (`PageDigest(of:)`): batches of every size around its lanes (two
/// with the SHA extensions, up to eight without), pages that differ only in
/// their last byte, and the empty batch.
final class PageHasherTests: XCTestCase {
    func testDigestsAreSHA256OfEachPage() {
        let seed = testSeed(0x5A25_6000_0000_0001, "PageHasherTests")
        var random = SplitMix64(seed: seed)
        let page = Int(CheckpointFormat.pageSize)
        let hasher = PageHasher()
        print("PageHasherTests: hashing with \(hasher.kind)")
        var counts = Array(0...19)
        counts += [63, 64, 65, 257]
        for _ in 0..<8 {
            counts.append(Int(random.next() % 300))
        }
        for count in counts {
            var bytes = random.bytes(count * page)
            // Pairs of pages equal but for their last byte, and a zero page.
            if count >= 3 {
                for i in 0..<page { bytes[page + i] = bytes[i] }
                bytes[2 * page - 1] ^= 1
                for i in 0..<page { bytes[2 * page + i] = 0 }
            }
            var digests = [PageDigest(words: (1, 2, 3, 4))]
            bytes.withUnsafeBytes { hasher.appendDigests(of: $0, to: &digests) }
            XCTAssertEqual(digests.count, count + 1, "seed \(seed): count \(count)")
            XCTAssertEqual(digests[0], PageDigest(words: (1, 2, 3, 4)), "seed \(seed): count \(count): the digest before was overwritten")
            bytes.withUnsafeBytes { all in
                for i in 0..<count {
                    let one = UnsafeRawBufferPointer(rebasing: all[i * page..<(i + 1) * page])
                    let expected = PageDigest(of: one)
                    if digests[i + 1] != expected {
                        XCTFail("seed \(seed): count \(count): page \(i): \(digests[i + 1]) is not its SHA-256 \(expected)")
                        return
                    }
                }
            }
        }
    }

    /// Where Debian's library is installed, the hasher uses it rather than
    /// falling back to swift-crypto (which the test above would not notice),
    /// and the fallback gives the same digests.
    func testTheLibraryIsUsedWhereInstalledAndTheFallbackAgrees() {
        let page = Int(CheckpointFormat.pageSize)
        let native = PageHasher()
        let portable = PageHasher(portable: true)
        XCTAssertEqual(portable.kind, PageHasher.portableKind)
        #if arch(x86_64)
        if FileManager.default.fileExists(atPath: "/usr/lib/x86_64-linux-gnu/libIPSec_MB.so.1") {
            XCTAssertNotEqual(native.kind, PageHasher.portableKind, "libIPSec_MB.so.1 is installed but not used")
        }
        #endif
        var random = SplitMix64(seed: 0x5A25_6000_0000_0003)
        let bytes = random.bytes(37 * page)
        var a: [PageDigest] = []
        var b: [PageDigest] = []
        bytes.withUnsafeBytes {
            native.appendDigests(of: $0, to: &a)
            portable.appendDigests(of: $0, to: &b)
        }
        XCTAssertEqual(a.count, 37)
        XCTAssertEqual(a, b)
    }

    /// The SHA-256 of a zero page, from Python's hashlib.
    func testZeroPageDigest() {
        let zero = [UInt8](repeating: 0, count: Int(CheckpointFormat.pageSize))
        var digests: [PageDigest] = []
        zero.withUnsafeBytes { PageHasher().appendDigests(of: $0, to: &digests) }
        let hex = withUnsafeBytes(of: digests[0].words) { $0.map { String(format: "%02x", $0) }.joined() }
        XCTAssertEqual(hex, "ad7facb2586fc6e966c004d7d1d16b024f5805ff7cb47c7a85dabd8b48892ca7")
    }

    /// Hashers lent by a pool from many threads at once (run under TSan by
    /// test.sh) each give the same digests.
    func testPoolLendsHashersToConcurrentThreads() {
        let page = Int(CheckpointFormat.pageSize)
        var random = SplitMix64(seed: 0x5A25_6000_0000_0002)
        let bytes = random.bytes(33 * page)
        let reference = bytes.withUnsafeBytes { b in
            (0..<33).map { PageDigest(of: UnsafeRawBufferPointer(rebasing: b[$0 * page..<($0 + 1) * page])) }
        }
        let pool = PageHasherPool()
        let failures = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 64) { i in
            var digests: [PageDigest] = []
            let count = 1 + i % 33
            bytes.withUnsafeBytes { b in pool.withHasher { $0.appendDigests(of: UnsafeRawBufferPointer(rebasing: b[..<(count * page)]), to: &digests) } }
            if digests != Array(reference[..<count]) {
                failures.add(1, ordering: .relaxed)
            }
        }
        XCTAssertEqual(failures.load(ordering: .relaxed), 0, "a hasher lent by the pool gave other digests")
    }
}
