/// Checkpoints of memory this process did not allocate: a raw memory image
/// (a sparse regular file) or another process's memfd (`/proc/PID/fd/N`).
///
/// Saving (`RawImage+Save.swift`) makes the source's data extents, rounded
/// out to whole pages, allocated segments of one kind with one reference;
/// its holes stay holes; pages found all zero are not stored. The source is
/// read with `pread` and never changed. Restoring (`RawImage+Restore.swift`)
/// writes a sparse image of the source's exact length, with holes wherever
/// nothing was stored.
public enum RawImage {}
