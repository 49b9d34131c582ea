import CZstd

/// A zstd compression context, reused across calls and released when the
/// value goes away.
///
/// Every call produces one complete frame that records its content size and
/// carries no zstd checksum (the checkpoint format has its own CRC-32C).
/// Compression runs on the calling thread.
///
/// The value may move between threads (it is `Sendable` and has a single
/// owner), but `compress` mutates the context, so one compressor serves one
/// thread at a time.
public struct ZstdCompressor: ~Copyable, @unchecked Sendable {
    /// The owned `ZSTD_CCtx`; never nil, freed in `deinit`.
    private let context: OpaquePointer

    /// The levels this libzstd accepts: negative levels trade ratio for
    /// speed, 0 stands for the default level (3), the maximum is 22.
    public static var supportedLevels: ClosedRange<Int32> {
        ZSTD_minCLevel()...ZSTD_maxCLevel()
    }

    /// Creates a context that compresses at `level`.
    ///
    /// - Throws: `.invalidLevel` for a level outside `supportedLevels`, and
    ///   a library error if the context cannot be allocated or configured.
    public init(level: Int32) throws(ZstdError) {
        let supported = Self.supportedLevels
        guard supported.contains(level) else {
            throw .invalidLevel(level, supported: supported)
        }
        guard let context = ZSTD_createCCtx() else {
            throw ZstdError(function: "ZSTD_createCCtx", code: ZSTD_error_memory_allocation)
        }
        do {
            try Self.set(context, ZSTD_c_compressionLevel, level)
            try Self.set(context, ZSTD_c_contentSizeFlag, 1)
            try Self.set(context, ZSTD_c_checksumFlag, 0)
        } catch {
            ZSTD_freeCCtx(context)
            throw error
        }
        self.context = context
    }

    deinit {
        ZSTD_freeCCtx(context)
    }

    private static func set(
        _ context: OpaquePointer, _ parameter: ZSTD_cParameter, _ value: Int32
    ) throws(ZstdError) {
        try ZstdError.check("ZSTD_CCtx_setParameter", ZSTD_CCtx_setParameter(context, parameter, value))
    }

    /// Compresses all of `source` into one frame at the start of
    /// `destination`.
    ///
    /// A `destination` of `compressBound(source.count)` bytes always
    /// suffices. An empty `source` gives a valid frame of a few bytes that
    /// declares a content size of 0.
    ///
    /// - Returns: the frame's size in bytes.
    /// - Throws: a library error, for example "Destination buffer is too
    ///   small" when the frame does not fit; `destination` then holds
    ///   unspecified bytes.
    public mutating func compress(
        _ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer
    ) throws(ZstdError) -> Int {
        try ZstdError.check(
            "ZSTD_compress2",
            ZSTD_compress2(context, destination.baseAddress, destination.count, source.baseAddress, source.count)
        )
    }

    /// The largest frame that compressing `n` bytes can produce.
    ///
    /// - Precondition: `n` is not negative and the bound fits in an `Int`.
    public static func compressBound(_ n: Int) -> Int {
        precondition(n >= 0, "ZstdCompressor.compressBound: negative size \(n)")
        let bound = ZSTD_compressBound(n)
        precondition(
            ZSTD_isError(bound) == 0 && bound >= n,
            "ZstdCompressor.compressBound: \(n) bytes is beyond what zstd can compress in one frame"
        )
        return bound
    }
}
