import CZstd

/// A zstd decompression context that accepts only what the checkpoint
/// writer produces: exactly one frame, which declares its content size,
/// whose window fits the limit, and which decompresses to exactly the
/// expected number of bytes.
///
/// The input is untrusted: a bad frame throws, and nothing is ever written
/// outside the destination buffer (libzstd's one-shot decoder stops at the
/// capacity it is given).
///
/// The value may move between threads (it is `Sendable` and has a single
/// owner), but `decompress` mutates the context, so one decompressor serves
/// one thread at a time.
public struct ZstdDecompressor: ~Copyable, @unchecked Sendable {
    /// The owned `ZSTD_DCtx`; never nil, freed in `deinit`.
    private let context: OpaquePointer

    /// Frames whose window exceeds 2^windowLogMax bytes are refused.
    public let windowLogMax: Int32

    /// Creates a context that refuses frames whose window is larger than
    /// 2^`windowLogMax` bytes. The default, 27 (128 MiB), is also what the
    /// `zstd` tool accepts without `--long`.
    ///
    /// - Throws: a library error if the context cannot be allocated or if
    ///   libzstd rejects `windowLogMax` (outside 10...31 on 64-bit hosts).
    public init(windowLogMax: Int32 = 27) throws(ZstdError) {
        guard let context = ZSTD_createDCtx() else {
            throw ZstdError(function: "ZSTD_createDCtx", code: ZSTD_error_memory_allocation)
        }
        do {
            try ZstdError.check(
                "ZSTD_DCtx_setParameter",
                ZSTD_DCtx_setParameter(context, ZSTD_d_windowLogMax, windowLogMax)
            )
        } catch {
            ZSTD_freeDCtx(context)
            throw error
        }
        self.context = context
        self.windowLogMax = windowLogMax
    }

    deinit {
        ZSTD_freeDCtx(context)
    }

    /// Decompresses the single frame in `source`, which must fill
    /// `destination` exactly.
    ///
    /// - Throws:
    ///   - a library error when `source` does not start with a complete,
    ///     valid frame (garbage, truncation, corrupt blocks);
    ///   - `.trailingData` when bytes follow the frame;
    ///   - `.skippableFrame` when the frame is a skippable one;
    ///   - `.windowTooLarge` when its window exceeds 2^`windowLogMax`;
    ///   - `.contentSizeMissing` or `.contentSizeMismatch` when the frame
    ///     does not declare `destination.count` bytes of content;
    ///   - `.outputSizeMismatch` when the content is not that long after all.
    ///
    ///   After an error `destination` holds unspecified bytes.
    public mutating func decompress(
        _ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer
    ) throws(ZstdError) {
        let frameSize = try ZstdError.check(
            "ZSTD_findFrameCompressedSize",
            ZSTD_findFrameCompressedSize(source.baseAddress, source.count)
        )
        guard frameSize == source.count else {
            throw .trailingData(frameSize: frameSize, inputSize: source.count)
        }

        var header = ZSTD_frameHeader()
        let missing = try ZstdError.check(
            "ZSTD_getFrameHeader",
            ZSTD_getFrameHeader(&header, source.baseAddress, source.count)
        )
        // A positive result asks for more input; the frame was found
        // complete above, so this only guards against a libzstd surprise.
        guard missing == 0 else {
            throw ZstdError(function: "ZSTD_getFrameHeader", code: ZSTD_error_srcSize_wrong)
        }
        guard header.frameType != ZSTD_skippableFrame else {
            throw .skippableFrame
        }
        // The one-shot decoder ignores ZSTD_d_windowLogMax (that limit only
        // guards the buffers of streaming decompression), so the header is
        // checked here. For a single-segment frame the window is the content
        // size, as in libzstd's own streaming check.
        let windowLimit = UInt64(1) << UInt64(windowLogMax)
        guard header.windowSize <= windowLimit else {
            throw .windowTooLarge(windowSize: header.windowSize, limit: windowLimit)
        }
        guard header.frameContentSize != ZSTD_CONTENTSIZE_UNKNOWN else {
            throw .contentSizeMissing
        }
        guard header.frameContentSize == UInt64(destination.count) else {
            throw .contentSizeMismatch(declared: header.frameContentSize, expected: destination.count)
        }

        let produced = try ZstdError.check(
            "ZSTD_decompressDCtx",
            ZSTD_decompressDCtx(
                context, destination.baseAddress, destination.count, source.baseAddress, source.count
            )
        )
        guard produced == destination.count else {
            throw .outputSizeMismatch(produced: produced, expected: destination.count)
        }
    }
}
