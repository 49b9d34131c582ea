// userfaultfd(2) and its ioctls, for lazy restores and `pgsnap serve-uffd`;
// file descriptors over Unix sockets (SCM_RIGHTS).
//
// Debian 12's kernel headers predate UFFDIO_POISON and a few features, so
// those are defined here from the kernel's documented ABI; the running
// kernel says which it supports (UFFDIO_API), and callers check that.
#define _GNU_SOURCE
#include "CLinuxShim.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif
#ifndef _UFFDIO_POISON
// struct uffdio_poison: a range, a mode (bit 0: do not wake), and the
// bytes poisoned (out).
struct pg_uffdio_poison {
    struct uffdio_range range;
    __u64 mode;
    __s64 updated;
};
#define PG_UFFDIO_POISON _IOWR(UFFDIO, 0x08, struct pg_uffdio_poison)
#else
#define pg_uffdio_poison uffdio_poison
#define PG_UFFDIO_POISON UFFDIO_POISON
#endif

const uint64_t pg_UFFD_FEATURE_EVENT_REMOVE = UFFD_FEATURE_EVENT_REMOVE;
const uint64_t pg_UFFD_FEATURE_EVENT_UNMAP = UFFD_FEATURE_EVENT_UNMAP;
const uint64_t pg_UFFD_FEATURE_MISSING_SHMEM = UFFD_FEATURE_MISSING_SHMEM;
const uint64_t pg_UFFD_FEATURE_POISON = UFFD_FEATURE_POISON;
const uint64_t pg_UFFD_FEATURE_SIGBUS = UFFD_FEATURE_SIGBUS;
const int pg_UFFD_USER_MODE_ONLY = UFFD_USER_MODE_ONLY;
const uint64_t pg_UFFDIO_REGISTER_MODE_MISSING = UFFDIO_REGISTER_MODE_MISSING;
const uint8_t pg_UFFD_EVENT_PAGEFAULT = UFFD_EVENT_PAGEFAULT;
const uint8_t pg_UFFD_EVENT_REMOVE = UFFD_EVENT_REMOVE;
const uint8_t pg_UFFD_EVENT_UNMAP = UFFD_EVENT_UNMAP;
const uint8_t pg_UFFD_EVENT_REMAP = UFFD_EVENT_REMAP;
const uint8_t pg_UFFD_EVENT_FORK = UFFD_EVENT_FORK;
const uint64_t pg_UFFD_PAGEFAULT_FLAG_WRITE = UFFD_PAGEFAULT_FLAG_WRITE;

int pg_uffd_open(int flags) {
    // /dev/userfaultfd (Linux 6.1) is allowed where the syscall is not
    // (vm.unprivileged_userfaultfd=0 without CAP_SYS_PTRACE) if its mode
    // lets the caller open it.
    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev >= 0) {
        int fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
        int saved = errno;
        close(dev);
        if (fd >= 0) return fd;
        errno = saved;
    }
    return (int)syscall(SYS_userfaultfd, flags);
}

int pg_uffd_api(int fd, uint64_t features, uint64_t *granted, uint64_t *ioctls) {
    struct uffdio_api api = {.api = UFFD_API, .features = features};
    if (ioctl(fd, UFFDIO_API, &api) != 0) return -1;
    if (granted) *granted = api.features;
    if (ioctls) *ioctls = api.ioctls;
    return 0;
}

int pg_uffd_register(int fd, uint64_t start, uint64_t length, uint64_t mode, uint64_t *ioctls) {
    struct uffdio_register r = {.range = {.start = start, .len = length}, .mode = mode};
    if (ioctl(fd, UFFDIO_REGISTER, &r) != 0) return -1;
    if (ioctls) *ioctls = r.ioctls;
    return 0;
}

int pg_uffd_unregister(int fd, uint64_t start, uint64_t length) {
    struct uffdio_range r = {.start = start, .len = length};
    return ioctl(fd, UFFDIO_UNREGISTER, &r);
}

int pg_uffd_wake(int fd, uint64_t start, uint64_t length) {
    struct uffdio_range r = {.start = start, .len = length};
    return ioctl(fd, UFFDIO_WAKE, &r);
}

int pg_uffd_copy(int fd, uint64_t dst, const void *src, uint64_t length, int64_t *copied) {
    struct uffdio_copy c = {.dst = dst, .src = (uint64_t)(uintptr_t)src, .len = length, .mode = 0};
    int r = ioctl(fd, UFFDIO_COPY, &c);
    if (copied) *copied = c.copy;
    return r;
}

int pg_uffd_zeropage(int fd, uint64_t start, uint64_t length, int64_t *done) {
    struct uffdio_zeropage z = {.range = {.start = start, .len = length}, .mode = 0};
    int r = ioctl(fd, UFFDIO_ZEROPAGE, &z);
    if (done) *done = z.zeropage;
    return r;
}

int pg_uffd_poison(int fd, uint64_t start, uint64_t length, int64_t *done) {
    struct pg_uffdio_poison p = {.range = {.start = start, .len = length}, .mode = 0};
    int r = ioctl(fd, PG_UFFDIO_POISON, &p);
    if (done) *done = p.updated;
    return r;
}

int pg_uffd_read_events(int fd, struct pg_uffd_event *events, int capacity) {
    struct uffd_msg msgs[64];
    if (capacity > 64) capacity = 64;
    ssize_t n = read(fd, msgs, sizeof(struct uffd_msg) * (size_t)capacity);
    if (n < 0) return -1;
    int count = (int)(n / (ssize_t)sizeof(struct uffd_msg));
    for (int i = 0; i < count; i++) {
        memset(&events[i], 0, sizeof(events[i]));
        events[i].event = msgs[i].event;
        switch (msgs[i].event) {
        case UFFD_EVENT_PAGEFAULT:
            events[i].flags = msgs[i].arg.pagefault.flags;
            events[i].address = msgs[i].arg.pagefault.address;
            break;
        case UFFD_EVENT_REMOVE:
        case UFFD_EVENT_UNMAP:
            events[i].start = msgs[i].arg.remove.start;
            events[i].end = msgs[i].arg.remove.end;
            break;
        case UFFD_EVENT_REMAP:
            events[i].start = msgs[i].arg.remap.from;
            events[i].end = msgs[i].arg.remap.to;
            events[i].address = msgs[i].arg.remap.len;
            break;
        default:
            break;
        }
    }
    return count;
}

ssize_t pg_send_with_fd(int socket, const void *bytes, size_t length, int fd) {
    struct iovec iov = {.iov_base = (void *)bytes, .iov_len = length};
    char control[CMSG_SPACE(sizeof(int))];
    memset(control, 0, sizeof(control));
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    return sendmsg(socket, &msg, MSG_NOSIGNAL);
}

ssize_t pg_recv_with_fd(int socket, void *bytes, size_t length, int *fd) {
    struct iovec iov = {.iov_base = bytes, .iov_len = length};
    char control[CMSG_SPACE(sizeof(int) * 4)];
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control)};
    ssize_t n = recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
    *fd = -1;
    if (n < 0) return n;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
            int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            int received[4];
            memcpy(received, CMSG_DATA(c), sizeof(int) * (size_t)(count > 4 ? 4 : count));
            // The first descriptor is the one wanted; close any others.
            for (int i = 0; i < count && i < 4; i++) {
                if (*fd < 0) *fd = received[i]; else close(received[i]);
            }
        }
    }
    return n;
}

int pg_peer_pid(int socket) {
    struct ucred credentials;
    socklen_t length = sizeof(credentials);
    if (getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -1;
    return credentials.pid;
}
