import Foundation
import XCTest

/// The S3-compatible server of the object-store tests: moto, with
/// signature checking, and a fault-injecting proxy in front of it, started
/// by scripts/test.sh (`scripts/s3test/server.py`), which passes them in
/// PGSNAP_TEST_S3_* variables.
///
/// What a test checks on the server goes through `scripts/s3test/admin.py`
/// (boto3): a client independent of pgsnap's.
public struct S3TestServer: Sendable {
    /// moto itself.
    public let endpoint: String
    /// The fault proxy in front of it.
    public let proxy: String
    public let accessKeyID: String
    public let secretAccessKey: String
    /// An assumed role's temporary credentials: key, secret, session token.
    public let session: (accessKeyID: String, secretAccessKey: String, token: String)?
    private let python: String
    private let adminScript: String
    private let proxyScript: String

    /// The server scripts/test.sh started; skips the test when there is
    /// none (a run outside the script).
    public static func require() throws -> S3TestServer {
        let env = ProcessInfo.processInfo.environment
        let names = [
            "PGSNAP_TEST_S3_ENDPOINT", "PGSNAP_TEST_S3_PROXY", "PGSNAP_TEST_S3_ACCESS_KEY_ID", "PGSNAP_TEST_S3_SECRET_ACCESS_KEY",
            "PGSNAP_TEST_S3_PYTHON", "PGSNAP_TEST_S3_ADMIN_SCRIPT", "PGSNAP_TEST_S3_PROXY_SCRIPT",
        ]
        let values = names.map { env[$0] ?? "" }
        if let missing = names.indices.first(where: { values[$0].isEmpty }) {
            throw XCTSkip(
                "no S3 test server (\(names[missing]) is not set): scripts/test.sh starts one; by hand, "
                    + "`python3 scripts/s3test/server.py start DIR` and source DIR/env")
        }
        var session: (String, String, String)?
        if let key = env["PGSNAP_TEST_S3_SESSION_ACCESS_KEY_ID"], let secret = env["PGSNAP_TEST_S3_SESSION_SECRET_ACCESS_KEY"],
            let token = env["PGSNAP_TEST_S3_SESSION_TOKEN"]
        {
            session = (key, secret, token)
        }
        return S3TestServer(
            endpoint: values[0], proxy: values[1], accessKeyID: values[2], secretAccessKey: values[3], session: session,
            python: values[4], adminScript: values[5], proxyScript: values[6])
    }

    /// The AWS variables that send pgsnap to the server (or to the proxy).
    public func awsEnvironment(viaProxy: Bool = false) -> [String: String] {
        [
            "AWS_ACCESS_KEY_ID": accessKeyID, "AWS_SECRET_ACCESS_KEY": secretAccessKey, "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": viaProxy ? proxy : endpoint,
        ]
    }

    /// A new bucket, named after the test.
    public func makeBucket(_ test: String = #function) throws -> String {
        let base = test.lowercased().filter { $0.isLetter || $0.isNumber }.prefix(40)
        let name = "t-\(base)-\(UInt32.random(in: 0...UInt32.max))"
        try admin("create-bucket", name)
        return name
    }

    /// Whether the key holds an object.
    public func exists(_ bucket: String, _ key: String) throws -> Bool {
        try admin("exists", bucket, key) == "yes"
    }

    public func etag(_ bucket: String, _ key: String) throws -> String {
        try admin("etag", bucket, key)
    }

    /// The keys of the bucket's incomplete multipart uploads.
    public func incompleteUploads(_ bucket: String) throws -> [String] {
        try admin("uploads", bucket).split(separator: "\n").map(String.init)
    }

    public func abortUploads(_ bucket: String) throws {
        try admin("abort-uploads", bucket)
    }

    public func put(_ bucket: String, _ key: String, file: String) throws {
        try admin("put", bucket, key, file)
    }

    public func get(_ bucket: String, _ key: String, file: String) throws {
        try admin("get", bucket, key, file)
    }

    /// Makes the proxy (`at`, by default the shared one) answer the next
    /// `count` requests whose "METHOD PATH" matches `match` with `action`
    /// (see fault_proxy.py: 500, 503, reset, delay:S, die).
    public func addFault(match: String, action: String, count: Int = 1, at proxy: String? = nil) throws {
        let rule = try JSONSerialization.data(withJSONObject: ["match": match, "action": action, "count": count])
        try admin("fault", proxy ?? self.proxy, String(decoding: rule, as: UTF8.self))
    }

    /// The requests the proxy saw since its faults were last cleared, with
    /// the action applied to each (empty for none).
    public func faultLog(at proxy: String? = nil) throws -> [(request: String, action: String)] {
        try admin("faults", proxy ?? self.proxy).split(separator: "\n").map { line in
            let parts = line.split(separator: "\t", omittingEmptySubsequences: false)
            return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
        }
    }

    public func clearFaults(at proxy: String? = nil) throws {
        try admin("clear-faults", proxy ?? self.proxy)
    }

    /// A fault proxy of the test's own in front of moto, for a fault that
    /// ends it (`die`); stopped when the returned process is.
    public func startProxy() throws -> (url: String, process: Process) {
        let port = try freePort()
        let motoPort = String(endpoint.split(separator: ":").last!)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [proxyScript, String(port), motoPort]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let url = "http://127.0.0.1:\(port)"
        for _ in 0..<100 {
            if (try? admin("faults", url)) != nil {
                return (url, process)
            }
            usleep(100_000)
        }
        process.terminate()
        throw XCTSkip("the test's own fault proxy did not start")
    }

    /// A loopback port nothing listens on (just now).
    public func freePort() throws -> Int {
        Int(try run(python, ["-c", "import socket;s=socket.socket();s.bind(('127.0.0.1',0));print(s.getsockname()[1])"]))!
    }

    @discardableResult
    private func admin(_ arguments: String...) throws -> String {
        try run(python, [adminScript] + arguments)
    }

    private func run(_ executable: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["PGSNAP_TEST_S3_ENDPOINT"] = endpoint
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw S3TestServerError(
                "\(URL(fileURLWithPath: arguments.first ?? executable).lastPathComponent) \(arguments.dropFirst().joined(separator: " ")): "
                    + String(decoding: errors, as: UTF8.self))
        }
        var text = String(decoding: output, as: UTF8.self)
        while text.hasSuffix("\n") {
            text.removeLast()
        }
        return text
    }
}

/// An admin request to the test server failed.
public struct S3TestServerError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
