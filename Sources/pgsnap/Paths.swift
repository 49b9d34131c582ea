#if canImport(Glibc)
import Glibc
#endif

/// How a path is named in messages: `-` is stdin or stdout.
func displayName(_ path: String, stdio: String) -> String {
    path == "-" ? stdio : path
}

/// Whether two paths name the same existing file (same device and inode):
/// writing one atomically would replace the other while it is read.
func isSameFile(_ a: String, _ b: String) -> Bool {
    var x = stat()
    var y = stat()
    guard stat(a, &x) == 0, stat(b, &y) == 0 else { return false }
    return x.st_dev == y.st_dev && x.st_ino == y.st_ino
}
