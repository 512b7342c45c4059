/* A slow disk on purpose: an LD_PRELOAD shim that sleeps INDMLOPS_SLOW_FSYNC_US microseconds before each call of
 * the fsync family, then calls the real function (dlsym(RTLD_NEXT)). Built and cached by
 * indmlops.targets.local.slowdisk; the local stack's launcher preloads it into every supervised program.
 *
 * Wrapped: fsync, fdatasync, syncfs, sync, msync with MS_SYNC, sync_file_range with SYNC_FILE_RANGE_WAIT_AFTER
 * (PostgreSQL issues sync_file_range(SYNC_FILE_RANGE_WRITE) as a non-blocking writeback hint: slowing that would
 * slow what a real disk does not). Not wrapped: O_SYNC/O_DSYNC writes, O_DIRECT, io_uring, and programs that make
 * system calls without libc (Go binaries: SeaweedFS, Prometheus).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static long long delay_us = -1; /* read once, at load (a fork inherits it) */

static void load_delay(void) {
    const char *text = getenv("INDMLOPS_SLOW_FSYNC_US");
    char *end = NULL;
    long long v = text ? strtoll(text, &end, 10) : 0;
    delay_us = (text && end != text && v > 0) ? v : 0;
}

__attribute__((constructor)) static void slowfsync_init(void) { load_delay(); }

static void slow_down(void) {
    if (delay_us < 0)
        load_delay();
    if (delay_us == 0)
        return;
    int saved = errno; /* the caller sees the real call's errno only */
    struct timespec left = {delay_us / 1000000, (delay_us % 1000000) * 1000};
    while (nanosleep(&left, &left) == -1 && errno == EINTR)
        ; /* a signal must not shorten the delay: sleep what is left */
    errno = saved;
}

#define REAL(name) (real_##name ? real_##name : (real_##name = dlsym(RTLD_NEXT, #name)))

static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_syncfs)(int);
static void (*real_sync)(void);
static int (*real_msync)(void *, size_t, int);
static int (*real_sync_file_range)(int, off_t, off_t, unsigned int);

int fsync(int fd) {
    slow_down();
    return REAL(fsync)(fd);
}

int fdatasync(int fd) {
    slow_down();
    return REAL(fdatasync)(fd);
}

int syncfs(int fd) {
    slow_down();
    return REAL(syncfs)(fd);
}

void sync(void) {
    slow_down();
    REAL(sync)();
}

int msync(void *addr, size_t length, int flags) {
    if (flags & MS_SYNC)
        slow_down();
    return REAL(msync)(addr, length, flags);
}

int sync_file_range(int fd, off_t offset, off_t nbytes, unsigned int flags) {
    if (flags & SYNC_FILE_RANGE_WAIT_AFTER)
        slow_down();
    return REAL(sync_file_range)(fd, offset, nbytes, flags);
}
