import CZstd

/// A failure to compress or decompress, or a compressed frame that does not
/// meet the checkpoint format's rules (exactly one frame, declared content
/// size equal to the expected size, bounded window).
///
/// Every description is a single line that starts with `zstd: `.
public enum ZstdError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// A libzstd function returned an error: its name, the stable error code
    /// (`ZSTD_getErrorCode`, see zstd_errors.h) and libzstd's text for it
    /// (`ZSTD_getErrorName`).
    case library(function: String, code: Int, name: String)
    /// A compression level outside what this libzstd supports.
    case invalidLevel(Int32, supported: ClosedRange<Int32>)
    /// The input is a skippable frame, which carries no compressed content.
    case skippableFrame
    /// The frame does not record how many bytes it decompresses to.
    case contentSizeMissing
    /// The frame records a content size other than the one the caller
    /// expects.
    case contentSizeMismatch(declared: UInt64, expected: Int)
    /// The frame asks for a larger history window than the decompressor
    /// accepts (both in bytes).
    case windowTooLarge(windowSize: UInt64, limit: UInt64)
    /// The input holds more bytes after its first complete frame.
    case trailingData(frameSize: Int, inputSize: Int)
    /// Decompression produced a number of bytes other than the expected one.
    case outputSizeMismatch(produced: Int, expected: Int)

    public var description: String {
        switch self {
        case let .library(function, code, name):
            return "zstd: \(function) failed: \(name) (libzstd error code \(code))"
        case let .invalidLevel(level, supported):
            return "zstd: compression level \(level) is outside the supported range "
                + "\(supported.lowerBound)...\(supported.upperBound)"
        case .skippableFrame:
            return "zstd: expected a compressed frame, found a skippable frame"
        case .contentSizeMissing:
            return "zstd: frame does not declare its content size"
        case let .contentSizeMismatch(declared, expected):
            return "zstd: frame declares \(declared) bytes of content, expected \(expected)"
        case let .windowTooLarge(windowSize, limit):
            return "zstd: frame needs a \(windowSize)-byte window, more than the \(limit)-byte limit"
        case let .trailingData(frameSize, inputSize):
            return "zstd: \(inputSize - frameSize) bytes follow the \(frameSize)-byte frame "
                + "(input is \(inputSize) bytes)"
        case let .outputSizeMismatch(produced, expected):
            return "zstd: frame decompressed to \(produced) bytes, expected \(expected)"
        }
    }
}

extension ZstdError {
    /// The error for a libzstd error code given as an enumerator.
    init(function: String, code: ZSTD_ErrorCode) {
        self = .library(
            function: function,
            code: Int(code.rawValue),
            name: String(cString: ZSTD_getErrorString(code))
        )
    }

    /// Returns `result` unchanged when it is a size or a success, and throws
    /// the library error it encodes otherwise; most libzstd functions report
    /// both through one `size_t`.
    @discardableResult
    static func check(_ function: String, _ result: Int) throws(ZstdError) -> Int {
        if ZSTD_isError(result) != 0 {
            throw .library(
                function: function,
                code: Int(ZSTD_getErrorCode(result).rawValue),
                name: String(cString: ZSTD_getErrorName(result))
            )
        }
        return result
    }
}
