import Foundation
import XCTest

/// A new, empty directory for one test, deleted with everything in it
/// afterwards. The one scratch-directory helper of every test suite of
/// this package: use it rather than `NSTemporaryDirectory()`, `mkdtemp` or
/// a fixed path under /tmp.
///
///     let scratch = try ScratchDirectory(for: self)
///     try bytes.write(to: scratch.url("image.raw"))
///
/// Made for a test (`for: self`), it is deleted in that test's teardown,
/// however long the test keeps it; made without one, it is deleted when
/// the last reference to it goes away.
public final class ScratchDirectory: Sendable {
    /// The directory.
    public let url: URL

    /// Whether deinit deletes the directory (no test's teardown does).
    private let deletesOnDeinit: Bool

    /// Makes the directory, named after `name` (by default the calling
    /// function's; letters and digits only) and a random suffix.
    ///
    /// - Parameters:
    ///   - test: the test whose teardown deletes the directory; if nil,
    ///     deinit deletes it.
    ///   - onTmpfs: make it on /dev/shm when that is writable, else in the
    ///     system's temporary directory (`$TMPDIR`, or /tmp): for tests
    ///     that compare block counts, which tmpfs keeps exact.
    /// - Throws: what `FileManager.createDirectory` throws.
    public init(_ name: String = #function, for test: XCTestCase? = nil, onTmpfs: Bool = false) throws {
        let base =
            onTmpfs && FileManager.default.isWritableFile(atPath: "/dev/shm")
            ? URL(fileURLWithPath: "/dev/shm") : FileManager.default.temporaryDirectory
        let label = name.filter { $0.isLetter || $0.isNumber }
        url = base.appendingPathComponent("pgalloc-test-\(label)-\(UUID().uuidString.prefix(8))")
        // Not withIntermediateDirectories: a name already taken is an
        // error, never a directory shared with another test.
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: false)
        deletesOnDeinit = test == nil
        if let test {
            test.addTeardownBlock { [url] in
                ScratchDirectory.delete(url)
            }
        }
    }

    deinit {
        if deletesOnDeinit {
            ScratchDirectory.delete(url)
        }
    }

    /// The directory's path.
    public var path: String { url.path }

    /// The path of `name` inside the directory.
    public func path(_ name: String) -> String {
        url.appendingPathComponent(name).path
    }

    /// The URL of `name` inside the directory.
    public func url(_ name: String) -> URL {
        url.appendingPathComponent(name)
    }

    private static func delete(_ url: URL) {
        try? FileManager.default.removeItem(at: url)
    }
}
