// Broken contracts trap, naming the call and the range: each scenario runs
// in a child process (this test binary, re-run on the one test with
// PGALLOC_MF_TRAP_SCENARIO set), which must die of a trap with the message
// on its standard error.

import XCTest

@testable import PGAlloc

final class MemoryFileTrapTests: XCTestCase {
    /// A file whose reclaimer blocks at a closed gate: freed pages stay in
    /// the usage set for as long as the (child) process lives.
    private func fileWithHeldReclaimer() throws -> MemoryFile {
        let gate = MFReclaimGate()
        gate.close()
        return try mfMakeFile { $0.fallocateFailure = gate.hook }
    }

    func testDecRefOfUnallocatedPagesTraps() throws {
        try MFTrap.expect(self, "decRefUnallocated", messageContains: [
            "MemoryFile.decRef([0x0, 0x1000)): unallocated pages [0x0, 0x1000)",
        ]) {
            let file = try mfMakeFile()
            _ = try file.allocate(mfPage, kind: .anonymous)
            file.decRef(mfRange(0, mfPage))
        }
    }

    func testDecRefOfPartlyUnallocatedPagesTraps() throws {
        try MFTrap.expect(self, "decRefPartlyUnallocated", messageContains: [
            "MemoryFile.decRef([0x3fffe000, 0x40000000)): unallocated pages [0x3fffe000, 0x3ffff000)",
        ]) {
            let file = try mfMakeFile()
            let fr = try file.allocate(mfPage, kind: .anonymous)
            file.decRef(mfRange(fr.start - mfPage, fr.end))
        }
    }

    func testDecRefWithNoReferencesLeftTraps() throws {
        try MFTrap.expect(self, "decRefNoReferences", messageContains: [
            "MemoryFile.decRef([0x3ffff000, 0x40000000)): no references left on [0x3ffff000, 0x40000000)",
        ]) {
            let file = try fileWithHeldReclaimer()
            let fr = try file.allocate(mfPage, kind: .anonymous)
            file.decRef(fr)
            file.decRef(fr)
        }
    }

    func testMisalignedRangeTraps() throws {
        try MFTrap.expect(self, "misaligned", messageContains: [
            "MemoryFile.incRef([0x3ffff001, 0x40000001)): invalid range: must be non-empty and page-aligned",
        ]) {
            let file = try mfMakeFile()
            let fr = try file.allocate(mfPage, kind: .anonymous)
            file.incRef(mfRange(fr.start + 1, fr.end + 1))
        }
    }

    func testEmptyRangeTraps() throws {
        try MFTrap.expect(self, "empty", messageContains: [
            "MemoryFile.decRef([0x3ffff000, 0x3ffff000)): invalid range",
        ]) {
            let file = try mfMakeFile()
            let fr = try file.allocate(mfPage, kind: .anonymous)
            file.decRef(mfRange(fr.start, fr.start))
        }
    }

    func testInvalidAllocationLengthTraps() throws {
        try MFTrap.expect(self, "badLength", messageContains: [
            "MemoryFile.allocate: invalid allocation length 0x64",
        ]) {
            let file = try mfMakeFile()
            _ = try file.allocate(100, kind: .anonymous)
        }
    }

    func testZeroAllocationLengthTraps() throws {
        try MFTrap.expect(self, "zeroLength", messageContains: [
            "MemoryFile.allocate: invalid allocation length 0x0",
        ]) {
            let file = try mfMakeFile()
            _ = try file.allocate(0, kind: .anonymous)
        }
    }

    func testIncRefOfFreedPagesTraps() throws {
        try MFTrap.expect(self, "incRefFreed", messageContains: [
            "MemoryFile.incRef([0x3fffe000, 0x40000000)): pages [0x3fffe000, 0x3ffff000) were already freed",
        ]) {
            let file = try fileWithHeldReclaimer()
            let fr = try file.allocate(mfPages(2), kind: .anonymous)
            file.decRef(mfRange(fr.start, fr.start + mfPage))
            file.incRef(fr)
        }
    }

    func testIncRefOfUnallocatedPagesTraps() throws {
        try MFTrap.expect(self, "incRefUnallocated", messageContains: [
            "MemoryFile.incRef([0x3fffe000, 0x40000000)): unallocated pages [0x3fffe000, 0x3ffff000)",
        ]) {
            let file = try mfMakeFile()
            let fr = try file.allocate(mfPage, kind: .anonymous)
            file.incRef(mfRange(fr.start - mfPage, fr.end))
        }
    }

    func testDecommitOfUnallocatedPagesTraps() throws {
        try MFTrap.expect(self, "decommitUnallocated", messageContains: [
            "MemoryFile.decommit([0x0, 0x2000)): unallocated pages [0x1000, 0x2000)",
        ]) {
            let file = try mfMakeFile()
            _ = try file.allocate(mfPage, kind: .anonymous, direction: .bottomUp)
            try file.decommit(mfRange(0, mfPages(2)))
        }
    }

    func testUseAfterDestroyTraps() throws {
        try MFTrap.expect(self, "afterDestroy", messageContains: [
            "MemoryFile.allocate: called after destroy",
        ]) {
            let file = try mfMakeFile()
            file.destroy()
            _ = try file.allocate(mfPage, kind: .anonymous)
        }
    }

    func testDecRefAfterDestroyTraps() throws {
        try MFTrap.expect(self, "decRefAfterDestroy", messageContains: [
            "MemoryFile.decRef: called after destroy",
        ]) {
            let file = try mfMakeFile()
            let fr = try file.allocate(mfPage, kind: .anonymous)
            file.destroy()
            file.decRef(fr)
        }
    }

    func testMarkEvictableOfAnEmptyRangeTraps() throws {
        try MFTrap.expect(self, "evictableEmpty", messageContains: [
            "MemoryFile.markEvictable([0x5, 0x5)): invalid range",
        ]) {
            let file = try mfMakeFile { $0.delayedEviction = .manual }
            file.markEvictable(MFEvictionRecorder(), mfRange(5, 5))
        }
    }

    func testReaderClaimingTooMuchTraps() throws {
        try MFTrap.expect(self, "readTooMuch", messageContains: [
            "MemoryFile.allocateAndFill: read returned 8193 for 8192 bytes",
        ]) {
            let file = try mfMakeFile()
            _ = try file.allocateAndFill(mfPages(2), kind: .anonymous) { $0.count + 1 }
        }
    }
}

extension MemoryFileTrapTests {
    /// After destroy the memfd is closed and its number may be reused by
    /// another file: calls that would use it trap instead.
    func testDecommitAfterDestroyTraps() throws {
        try MFTrap.expect(self, "decommitAfterDestroy", messageContains: [
            "MemoryFile.decommit: called after destroy",
        ]) {
            let file = try mfMakeFile()
            let fr = try file.allocate(mfPage, kind: .anonymous)
            file.destroy()
            try file.decommit(fr)
        }
    }

    func testTotalUsageAfterDestroyTraps() throws {
        try MFTrap.expect(self, "totalUsageAfterDestroy", messageContains: [
            "MemoryFile.totalUsage: called after destroy",
        ]) {
            let file = try mfMakeFile()
            file.destroy()
            _ = try file.totalUsage()
        }
    }

    func testUpdateUsageAfterDestroyTraps() throws {
        try MFTrap.expect(self, "updateUsageAfterDestroy", messageContains: [
            "MemoryFile.updateUsage: called after destroy",
        ]) {
            let file = try mfMakeFile()
            file.destroy()
            try file.updateUsage()
        }
    }
}
