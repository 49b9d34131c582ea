// Creating and destroying: a new file is empty (an adopted one is
// truncated), the IMA work-around leaves no mapping behind, destroy and
// dropping the last reference release the memfd and its mappings.

import Foundation
import XCTest

@testable import PGAlloc

#if canImport(Glibc)
import Glibc
#endif

final class MemoryFileLifecycleTests: XCTestCase {
    private func uniqueName(_ what: String) -> String {
        "pgalloc-mftest-\(what)-\(UUID().uuidString.prefix(8))"
    }

    private func openCount(_ name: String) -> Int {
        MFProc.openFileTargets().filter { $0.contains("memfd:\(name)") }.count
    }

    /// Creates a file, maps and touches a page, and returns a duplicate of
    /// its descriptor; the file itself is dropped on return.
    private func makeAndDrop(_ name: String) throws -> Int32 {
        let file = try mfMakeFile { $0.name = name }
        let fr = try file.allocate(mfPages(2), kind: .anonymous)
        try file.mfFill(fr, 0x42)
        XCTAssertEqual(openCount(name), 1)
        XCTAssertEqual(MFProc.mapLines(containing: "memfd:\(name)").count, 1, "one chunk mapped")
        let dup = Glibc.dup(file.fileDescriptor)
        XCTAssertGreaterThanOrEqual(dup, 0)
        XCTAssertEqual(openCount(name), 2)
        return dup
    }

    func testDroppingTheLastReferenceReleasesTheMemfdAndMappings() throws {
        let name = uniqueName("drop")
        let dup = try makeAndDrop(name)
        defer { close(dup) }
        XCTAssertEqual(openCount(name), 1, "only the duplicate is left open")
        XCTAssertEqual(MFProc.mapLines(containing: "memfd:\(name)"), [], "the chunk mappings are gone")
        // The file itself lives on through the duplicate.
        var st = stat()
        XCTAssertEqual(fstat(dup, &st), 0)
        XCTAssertEqual(UInt64(st.st_size), mfGiB)
        var word: UInt8 = 0
        XCTAssertEqual(pread(dup, &word, 1, off_t(mfGiB - mfPages(2))), 1)
        XCTAssertEqual(word, 0x42)
    }

    func testDestroyReleasesEverythingOnce() throws {
        let name = uniqueName("destroy")
        let file = try mfMakeFile { $0.name = name }
        let fr = try file.allocate(mfPage, kind: .anonymous)
        try file.mfTouch(fr)
        file.decRef(fr)
        file.waitForReclaim()
        XCTAssertEqual(openCount(name), 1)
        file.destroy()
        XCTAssertEqual(openCount(name), 0)
        XCTAssertEqual(MFProc.mapLines(containing: "memfd:\(name)"), [])
        // Waiting for reclaim returns at once after destroy; destroying
        // again is harmless, as is dropping the file afterwards.
        file.waitForReclaim()
        file.destroy()
        XCTAssertEqual(openCount(name), 0)
    }

    func testTheIMAWorkAroundLeavesNoMapping() throws {
        let name = uniqueName("ima")
        let file = try mfMakeFile { $0.name = name }
        // The executable mapping made at creation is gone; nothing is
        // mapped until a chunk is used.
        XCTAssertEqual(MFProc.mapLines(containing: "memfd:\(name)"), [])
        let fr = try file.allocate(mfPage, kind: .anonymous)
        try file.mfTouch(fr)
        let lines = MFProc.mapLines(containing: "memfd:\(name)")
        XCTAssertEqual(lines.count, 1)
        // Shared, read-write, never executable.
        XCTAssertTrue(lines.allSatisfy { $0.split(separator: " ")[1] == "rw-s" }, "\(lines)")
    }

    func testAdoptingAFileTruncatesIt() throws {
        let fd = try OwnedFileDescriptor.memfd(name: "pgalloc-mftest-adopt")
        let bytes = [UInt8](repeating: 7, count: Int(mfPages(3)))
        try bytes.withUnsafeBytes { try fd.descriptor.writeAll($0, atAbsoluteOffset: 0) }
        XCTAssertEqual(try fd.allocatedBytes(), mfPages(3))
        let raw = fd.rawValue
        let file = try MemoryFile(adopting: fd)
        XCTAssertEqual(file.fileDescriptor, raw)
        XCTAssertEqual(file.totalSize, 0)
        XCTAssertEqual(try file.totalUsage(), 0, "truncated to nothing")
        let fr = try file.allocate(mfPages(3), kind: .anonymous, direction: .bottomUp)
        XCTAssertEqual(fr, mfRange(0, mfPages(3)))
        XCTAssertTrue(try file.mfAllBytes(fr, equal: 0))
        mfAssertInvariants(file)
    }

    func testDescriptionListsTheSegments() throws {
        let file = try mfMakeFile()
        _ = try file.allocate(mfPage, kind: .tmpfs)
        _ = try file.allocate(mfPage, kind: .anonymous, direction: .bottomUp)
        let text = file.description
        XCTAssertTrue(text.contains("tmpfs"), text)
        XCTAssertTrue(text.contains("anonymous"), text)
        XCTAssertTrue(text.contains("[0x0, 0x1000)"), text)
    }
}
