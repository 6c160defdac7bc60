// os_linux.c: the engine's only door to the kernel for memory and files.
//
// Every call is a raw system call (syscall(2)), never the libc wrapper: the
// wrappers can be interposed by other preload libraries, and some allocate.
// syscall() itself sets errno, so each function saves and restores it and
// reports failures as negative errno values instead.
#define _GNU_SOURCE
#include "os.h"

#include "compiler.h"
#include "fmt.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/futex.h>
#include <linux/openat2.h>
#include <linux/userfaultfd.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

// System calls made through sys(), for tests (os_syscalls).
static unsigned long syscalls;

// Runs a system call and turns -1/errno into a negative errno result,
// leaving the caller's errno as it was.
static long sys(long nr, long a, long b, long c, long d, long e, long f) {
  int saved = errno;
  __atomic_fetch_add(&syscalls, 1, __ATOMIC_RELAXED);
  long r = syscall(nr, a, b, c, d, e, f);
  if (r == -1) r = -(long)errno;
  errno = saved;
  return r;
}
#define SYS6(nr, a, b, c, d, e, f)                                            \
  sys(nr, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))
#define SYS3(nr, a, b, c) SYS6(nr, a, b, c, 0, 0, 0)

// ---------------------------------------------------------------------------
// Fault injection (os.h). os_fault_armed is 0 in production: each wrapper
// tests it once and goes on.

static unsigned fault_kinds, fault_left, fault_fired;
static int fault_err;
static int os_fault_armed;

void os_fault_arm(unsigned kinds, unsigned nth, int err) {
  fault_kinds = kinds;
  fault_left = nth;
  fault_err = err;
  fault_fired = 0;
  __atomic_store_n(&os_fault_armed, kinds && nth, __ATOMIC_SEQ_CST);
}

unsigned os_fault_fired(void) { return fault_fired; }

static __attribute__((noinline)) int fault_hit(unsigned kind) {
  if (!(fault_kinds & kind) || !fault_left) return 0;
  if (--fault_left) return 0;
  __atomic_store_n(&os_fault_armed, 0, __ATOMIC_SEQ_CST);
  fault_fired++;
  return -fault_err;
}

// 0, or the injected failure of this call.
#define FAULT(kind)                                                           \
  (__builtin_expect(__atomic_load_n(&os_fault_armed, __ATOMIC_RELAXED), 0)   \
       ? fault_hit(kind)                                                      \
       : 0)

static long do_mmap(uintptr_t addr, size_t len, int prot, int flags, int fd,
                    uint64_t off) {
  int f = FAULT(OS_FAULT_MMAP);
  if (f) return f;
  return SYS6(SYS_mmap, addr, len, prot, flags, fd, off);
}

// mmap returns addresses in the upper half of the long range only for
// kernel addresses, so a result in [-4095, -1] is the only error encoding.
static int mmap_failed(long r) { return r < 0 && r > -4096; }

int os_reserve(uintptr_t addr, size_t len, uintptr_t *out) {
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
  if (addr) flags |= MAP_FIXED_NOREPLACE;
  long r = do_mmap(addr, len, PROT_NONE, flags, -1, 0);
  if (mmap_failed(r)) return (int)r;
  // Kernels before 4.17 take MAP_FIXED_NOREPLACE as a mere hint: a mapping
  // anywhere else is as good as a refusal.
  if (addr && (uintptr_t)r != addr) {
    SYS3(SYS_munmap, r, len, 0);
    return -EEXIST;
  }
  *out = (uintptr_t)r;
  return 0;
}

int os_commit(uintptr_t addr, size_t len) {
  int f = FAULT(OS_FAULT_MPROTECT);
  if (f) return f;
  return (int)SYS3(SYS_mprotect, addr, len, PROT_READ | PROT_WRITE);
}

int os_map_file(uintptr_t addr, size_t len, int fd, uint64_t off,
                int shared) {
  // MAP_FIXED is safe here: the caller (vmmap) owns [addr, addr+len).
  int flags = (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED;
  long r = do_mmap(addr, len, PROT_READ | PROT_WRITE, flags, fd, off);
  if (mmap_failed(r)) return (int)r;
  return 0;
}

int os_map_copy(int fd, size_t file_len, size_t len, int writable,
                uintptr_t *out) {
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  if (file_len >= len) {
    long r = do_mmap(0, len, prot, MAP_PRIVATE, fd, 0);
    if (mmap_failed(r)) return (int)r;
    *out = (uintptr_t)r;
    return 0;
  }
  // Zeros past the file's end (a page of a file past its end faults).
  long r = do_mmap(0, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mmap_failed(r)) return (int)r;
  size_t head = (file_len + 4095) & ~(size_t)4095;
  if (head) {
    long f = do_mmap((uintptr_t)r, head, prot, MAP_PRIVATE | MAP_FIXED, fd, 0);
    if (mmap_failed(f)) {
      SYS3(SYS_munmap, r, len, 0);
      return (int)f;
    }
  }
  *out = (uintptr_t)r;
  return 0;
}

int os_purge(uintptr_t addr, size_t len) {
  return (int)SYS3(SYS_madvise, addr, len, MADV_DONTNEED);
}

int os_advise_huge(uintptr_t addr, size_t len) {
  return (int)SYS3(SYS_madvise, addr, len, MADV_HUGEPAGE);
}

int os_populate_write(uintptr_t addr, size_t len) {
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
  return (int)SYS3(SYS_madvise, addr, len, MADV_POPULATE_WRITE);
}

int os_purge_lazy(uintptr_t addr, size_t len) {
#ifdef MADV_FREE
  return (int)SYS3(SYS_madvise, addr, len, MADV_FREE);
#else
  return -EINVAL;
#endif
}

int os_unmap(uintptr_t addr, size_t len) {
  return (int)SYS3(SYS_munmap, addr, len, 0);
}

int os_msync(uintptr_t addr, size_t len) {
  return (int)SYS3(SYS_msync, addr, len, MS_SYNC);
}

void os_name_range(uintptr_t addr, size_t len, const char *name) {
  // EINVAL without CONFIG_ANON_VMA_NAME: the name is only a convenience.
  SYS6(SYS_prctl, PR_SET_VMA, PR_SET_VMA_ANON_NAME, addr, len, name, 0);
}

// ---------------------------------------------------------------------------
// Files

int os_open(const char *path, int flags, int mode) {
  int f = FAULT(OS_FAULT_OPEN);
  if (f) return f;
  return (int)SYS6(SYS_openat, AT_FDCWD, path,
                   flags | O_NOFOLLOW | O_CLOEXEC, mode, 0, 0);
}

static int open_walk(const char *path, int flags, int mode);

int os_open_walk(const char *path, int flags, int mode) {
  int f = FAULT(OS_FAULT_OPEN);
  if (f) return f;
  return open_walk(path, flags, mode);
}

RARE static int open_walk(const char *path, int flags, int mode) {
  // dir: the directory the next component is looked up in; owned (closed
  // here) once it is not AT_FDCWD.
  int dir = AT_FDCWD;
  const char *s = path;
  char comp[256];  // NAME_MAX + 1
  if (!*s) return -ENOENT;
  if (*s == '/') {
    dir = (int)SYS6(SYS_openat, AT_FDCWD, "/",
                    O_PATH | O_DIRECTORY | O_CLOEXEC, 0, 0, 0);
    if (dir < 0) return dir;
  }
  for (;;) {
    while (*s == '/') s++;
    const char *e = s;
    while (*e && *e != '/') e++;
    size_t n = (size_t)(e - s);
    const char *next = e;
    while (*next == '/') next++;
    int last = *next == 0;  // "a/b/" ends with b as its last component
    long r;
    if (n >= sizeof comp) {
      r = -ENAMETOOLONG;
    } else if (n == 0) {
      r = -ENOENT;  // "/" or "" alone: no file to open
    } else {
      memcpy(comp, s, n);
      comp[n] = 0;
      if (last) {
        r = SYS6(SYS_openat, dir, comp, flags | O_NOFOLLOW | O_CLOEXEC, mode,
                 0, 0);
      } else {
        // O_PATH|O_NOFOLLOW opens a link itself instead of failing, so the
        // type is checked: a link is refused as openat2 would (ELOOP).
        r = SYS6(SYS_openat, dir, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC, 0,
                 0, 0);
        if (r >= 0) {
          struct stat st;
          long q = SYS3(SYS_fstat, r, &st, 0);
          long bad = q < 0             ? q
                     : S_ISLNK(st.st_mode) ? -ELOOP
                     : !S_ISDIR(st.st_mode) ? -ENOTDIR
                                            : 0;
          if (bad) {
            SYS3(SYS_close, r, 0, 0);
            r = bad;
          }
        }
      }
    }
    if (dir != AT_FDCWD) SYS3(SYS_close, dir, 0, 0);
    if (r < 0 || last) return (int)r;
    dir = (int)r;
    s = next;
  }
}

RARE int os_open_nolinks(const char *path, int flags, int mode) {
  int f = FAULT(OS_FAULT_OPEN);
  if (f) return f;
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC);
  how.mode = flags & O_CREAT ? (uint64_t)mode : 0;  // else EINVAL
  how.resolve = RESOLVE_NO_SYMLINKS;
  long r = SYS6(SYS_openat2, AT_FDCWD, path, &how, sizeof how, 0, 0);
  // No openat2 (before 5.6, or filtered by a seccomp policy, which may
  // answer EPERM), or an open_how this kernel does not know (EINVAL): the
  // walk does the same. Retrying a genuine EINVAL or EPERM only repeats it.
  if (r == -ENOSYS || r == -EINVAL || r == -EPERM)
    return open_walk(path, flags, mode);
  return (int)r;
}

int os_close(int fd) { return (int)SYS3(SYS_close, fd, 0, 0); }

int os_unlink(const char *path) {
  return (int)SYS3(SYS_unlinkat, AT_FDCWD, path, 0);
}

int os_file_stat(int fd, struct os_stat *out) {
  struct stat st;
  long r = SYS3(SYS_fstat, fd, &st, 0);
  if (r < 0) return (int)r;
  out->size = (uint64_t)st.st_size;
  out->is_regular = S_ISREG(st.st_mode);
  out->dev = (uint64_t)st.st_dev;
  out->ino = (uint64_t)st.st_ino;
  out->uid = (uint32_t)st.st_uid;
  out->mode = (uint32_t)st.st_mode;
  out->nlink = (uint32_t)st.st_nlink;
  return 0;
}

int os_file_size(int fd, uint64_t *size, int *is_regular, uint64_t *dev,
                 uint64_t *ino) {
  struct os_stat st = {0};
  int r = os_file_stat(fd, &st);
  if (r < 0) return r;
  *size = st.size;
  *is_regular = st.is_regular;
  *dev = st.dev;
  *ino = st.ino;
  return 0;
}

uint32_t os_geteuid(void) { return (uint32_t)SYS3(SYS_geteuid, 0, 0, 0); }

int os_pread_full(int fd, void *buf, size_t len, uint64_t off) {
  char *p = buf;
  while (len) {
    long r = SYS6(SYS_pread64, fd, p, len, off, 0, 0);
    if (r == -EINTR) continue;
    if (r < 0) return (int)r;
    if (r == 0) return -EIO;  // the caller checked the size: a race
    p += r, len -= (size_t)r, off += (uint64_t)r;
  }
  return 0;
}

int os_allocate(int fd, uint64_t off, uint64_t len) {
  long r = FAULT(OS_FAULT_FALLOCATE);
  if (r) return (int)r;
  do r = SYS6(SYS_fallocate, fd, 0, off, len, 0, 0);
  while (r == -EINTR);
  return (int)r;
}

int os_truncate(int fd, uint64_t len) {
  int f = FAULT(OS_FAULT_FTRUNCATE);
  if (f) return f;
  return (int)SYS3(SYS_ftruncate, fd, len, 0);
}

int os_fsync(int fd) {
  int f = FAULT(OS_FAULT_FSYNC);
  if (f) return f;
  return (int)SYS3(SYS_fsync, fd, 0, 0);
}

RARE int os_writeback(int fd) {
  // Offset 0 and length 0: the whole file. 2: SYNC_FILE_RANGE_WRITE.
  return (int)SYS6(SYS_sync_file_range, fd, 0, 0, 2, 0, 0);
}

uint64_t os_as_limit(void) {
  struct {
    uint64_t cur, max;
  } lim = {0, 0};
  // prlimit64(0, RLIMIT_AS = 9, NULL, &old): getrlimit without libc.
  if (SYS6(SYS_prlimit64, 0, 9, 0, &lim, 0, 0) < 0) return 0;
  return lim.cur == ~(uint64_t)0 ? 0 : lim.cur;
}

int os_lock_file(int fd, int exclusive) {
  return (int)SYS3(SYS_flock, fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB,
                   0);
}

int os_unlock_file(int fd) { return (int)SYS3(SYS_flock, fd, LOCK_UN, 0); }

int os_write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len) {
    long r = SYS3(SYS_write, fd, p, len);
    if (r == -EINTR) continue;
    if (r <= 0) return r ? (int)r : -EIO;
    p += r, len -= (size_t)r;
  }
  return 0;
}

// ---------------------------------------------------------------------------
// Snapshots: a directory of files, written by a quiet child

int os_mkdir(const char *path, int mode) {
  return (int)SYS3(SYS_mkdirat, AT_FDCWD, path, mode);
}

int os_open_at(int dirfd, const char *name, int flags, int mode) {
  int f = FAULT(OS_FAULT_OPEN);
  if (f) return f;
  return (int)SYS6(SYS_openat, dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC,
                   mode, 0, 0);
}

int os_rename_at(int dirfd, const char *from, const char *to) {
  return (int)SYS6(SYS_renameat, dirfd, from, dirfd, to, 0, 0);
}

int os_unlink_at(int dirfd, const char *name) {
  return (int)SYS3(SYS_unlinkat, dirfd, name, 0);
}

RARE int os_list_dir(int dirfd, int (*fn)(void *arg, const char *name),
                     void *arg) {
  // struct linux_dirent64: ino 8, off 8, reclen 2, type 1, then the name.
  char buf[4096] __attribute__((aligned(8)));
  long r = SYS3(SYS_lseek, dirfd, 0, SEEK_SET);
  if (r < 0) return (int)r;
  for (;;) {
    long n = SYS3(SYS_getdents64, dirfd, buf, sizeof buf);
    if (n == -EINTR) continue;
    if (n <= 0) return (int)n;
    for (long at = 0; at + 19 < n;) {
      unsigned short reclen;
      memcpy(&reclen, buf + at + 16, sizeof reclen);
      if (reclen < 20 || at + reclen > n) return -EIO;
      const char *name = buf + at + 19;
      if (!(name[0] == '.' && (name[1] == 0 ||
                               (name[1] == '.' && name[2] == 0)))) {
        int s = fn(arg, name);
        if (s) return s;
      }
      at += reclen;
    }
  }
}

int os_pwrite_all(int fd, const void *buf, size_t len, uint64_t off) {
  const char *p = buf;
  while (len) {
    long r = SYS6(SYS_pwrite64, fd, p, len, off, 0, 0);
    if (r == -EINTR) continue;
    if (r <= 0) return r ? (int)r : -EIO;
    p += r, len -= (size_t)r, off += (uint64_t)r;
  }
  return 0;
}

int os_set_direct(int fd, int on) {
  int f = on ? FAULT(OS_FAULT_DIRECT) : 0;
  if (f) return f;
  long fl = SYS3(SYS_fcntl, fd, F_GETFL, 0);
  if (fl < 0) return (int)fl;
  fl = on ? fl | O_DIRECT : fl & ~(long)O_DIRECT;
  return (int)SYS3(SYS_fcntl, fd, F_SETFL, fl);
}

RARE long os_copy_own(const struct iovec *dst, const struct iovec *src,
                      unsigned n) {
  long pid = SYS3(SYS_getpid, 0, 0, 0);
  long r;
  do r = SYS6(SYS_process_vm_readv, pid, dst, n, src, n, 0);
  while (r == -EINTR);
  return r;
}

int os_pwritev_all(int fd, struct iovec *iov, int n, uint64_t off) {
  while (n > 0) {
    long r = SYS6(SYS_pwritev, fd, iov, n, off, 0, 0);
    if (r == -EINTR) continue;
    if (r <= 0) return r ? (int)r : -EIO;
    off += (uint64_t)r;
    // A short write: skip what went, go on from the rest.
    while (n > 0 && (size_t)r >= iov->iov_len) {
      r -= (long)iov->iov_len;
      iov++, n--;
    }
    if (n > 0) {
      iov->iov_base = (char *)iov->iov_base + r;
      iov->iov_len -= (size_t)r;
    }
  }
  return 0;
}

long os_read(int fd, void *buf, size_t len) {
  long r;
  do r = SYS3(SYS_read, fd, buf, len);
  while (r == -EINTR);
  return r;
}

int os_pipe(int fds[2]) { return (int)SYS3(SYS_pipe2, fds, O_CLOEXEC, 0); }

int os_socket_pair(int fds[2]) {
  return (int)SYS6(SYS_socketpair, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
                   fds, 0, 0);
}

int os_send_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len) {
    long r = SYS6(SYS_sendto, fd, p, len, MSG_NOSIGNAL, 0, 0);
    if (r == -EINTR) continue;
    if (r <= 0) return r ? (int)r : -EIO;
    p += r, len -= (size_t)r;
  }
  return 0;
}

int os_spawn_quiet(void) {
  // clone with no flags and exit signal 0: a fork, minus glibc's atfork
  // handlers and the SIGCHLD at its end. Such a child is a "clone child"
  // to wait(2): only __WCLONE or __WALL waits see it.
  return (int)SYS6(SYS_clone, 0, 0, 0, 0, 0, 0);
}

RARE void os_signals_default(void) {
  struct {
    uintptr_t handler;
    unsigned long flags;
    uintptr_t restorer;
    uint64_t mask;
  } sa;
  for (long sig = 1; sig <= 64; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    if (SYS6(SYS_rt_sigaction, sig, 0, &sa, 8, 0, 0) != 0) continue;
    if (sa.handler == (uintptr_t)SIG_DFL || sa.handler == (uintptr_t)SIG_IGN)
      continue;
    memset(&sa, 0, sizeof sa);
    sa.handler = (uintptr_t)SIG_DFL;
    SYS6(SYS_rt_sigaction, sig, &sa, 0, 8, 0, 0);
  }
}

int os_wait_quiet(int pid, int *status) {
  long r;
  do r = SYS6(SYS_wait4, pid, status, __WCLONE, 0, 0, 0);
  while (r == -EINTR);
  return r < 0 ? (int)r : 0;
}

int os_reap_quiet(int pid) {
  int status = 0;
  long r = SYS6(SYS_wait4, pid, &status, __WCLONE | WNOHANG, 0, 0, 0);
  return r == pid || r == -ECHILD;
}

void os_close_all_but(int fd) {
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
  if (fd > 0) SYS3(SYS_close_range, 0, (unsigned)fd - 1, 0);
  SYS3(SYS_close_range, (unsigned)fd + 1, ~0u, 0);
}

_Noreturn void os_exit(int code) {
  for (;;) SYS3(SYS_exit_group, code, 0, 0);
}

uint64_t os_now_ns(void) {
  struct timespec ts = {0, 0};
  SYS3(SYS_clock_gettime, CLOCK_MONOTONIC, &ts, 0);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void os_wait_while_ns(int *addr, int val, uint64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000u),
                        (long)(ns % 1000000000u)};
  SYS6(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, &ts, 0, 0);
}

int os_kill(int pid, int sig) { return (int)SYS3(SYS_kill, pid, sig, 0); }

// ---------------------------------------------------------------------------
// /proc/self/maps, read without stdio

static uintptr_t parse_hex(const char **s) {
  uintptr_t v = 0;
  for (;; (*s)++) {
    char c = **s;
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                   : -1;
    if (d < 0) return v;
    v = v * 16 + (uintptr_t)d;
  }
}

// Copies the interesting part of one maps line: range, permissions, path
// ("0xSTART-0xEND perms path", or "[anon]" when the line names none).
static void format_line(const char *line, size_t n, char *out, size_t outlen) {
  // line: "start-end perms offset dev inode   path"
  const char *f[6] = {0};
  size_t k = 0;
  for (size_t i = 0; i < n && k < 6; i++) {
    if (line[i] == ' ') continue;
    f[k++] = line + i;
    if (k == 6) break;
    while (i < n && line[i] != ' ') i++;
  }
  const char *dash = f[0];
  while (dash && dash < line + n && *dash != '-') dash++;
  if (!f[1] || !dash || dash >= line + n) {
    fmt_format(out, outlen, "an unreadable maps line");
    return;
  }
  size_t pl = f[5] ? (size_t)(line + n - f[5]) : 0;
  while (pl && f[5][pl - 1] == ' ') pl--;
  fmt_format(out, outlen, "0x%.*s-0x%.*s %.4s %.*s", (int)(dash - f[0]), f[0],
             (int)(f[1] - 1 - (dash + 1)), dash + 1, f[1], (int)(pl ? pl : 6),
             pl ? f[5] : "[anon]");
}

int os_find_mapping(uintptr_t addr, size_t len, uintptr_t *end, char *out,
                    size_t outlen) {
  char buf[4096], line[512];
  size_t ln = 0;
  int found = 0;
  int fd = (int)SYS6(SYS_openat, AT_FDCWD, "/proc/self/maps",
                     O_RDONLY | O_CLOEXEC, 0, 0, 0);
  if (fd < 0) return fd;
  long r;
  while (!found && (r = SYS3(SYS_read, fd, buf, sizeof buf)) > 0) {
    for (long i = 0; i < r && !found; i++) {
      if (buf[i] != '\n') {
        if (ln < sizeof line - 1) line[ln++] = buf[i];
        continue;
      }
      line[ln] = 0;
      const char *s = line;
      uintptr_t lo = parse_hex(&s);
      s++;
      uintptr_t hi = parse_hex(&s);
      if (lo < addr + len && hi > addr) {
        if (outlen) format_line(line, ln, out, outlen);
        if (end) *end = hi;
        found = 1;
      }
      ln = 0;
    }
  }
  SYS3(SYS_close, fd, 0, 0);
  if (!found && r < 0) return (int)r;
  return found;
}

RARE void os_describe_mapping(uintptr_t addr, size_t len, char *out,
                              size_t outlen) {
  int r = os_find_mapping(addr, len, NULL, out, outlen);
  if (r == 1 || !outlen) return;
  char eb[64];
  if (r < 0)  // the reason the map could not be read goes with the answer
    fmt_format(out, outlen, "an unknown mapping (/proc/self/maps: %s)",
               os_strerror(-r, eb, sizeof eb));
  else
    fmt_format(out, outlen, "an unknown mapping");
}

// Every errno the engine can see, as "NAME: text": a static table, since
// strerror may consult locales and allocate.
static const struct {
  int err;
  const char *text;
} os_errors[] = {
    {EPERM, "EPERM: operation not permitted"},
    {ENOENT, "ENOENT: no such file or directory"},
    {ESRCH, "ESRCH: no such process"},
    {EINTR, "EINTR: interrupted system call"},
    {EIO, "EIO: input/output error"},
    {ENXIO, "ENXIO: no such device or address"},
    {E2BIG, "E2BIG: argument list too long"},
    {ENOEXEC, "ENOEXEC: exec format error"},
    {EBADF, "EBADF: bad file descriptor"},
    {ECHILD, "ECHILD: no child processes"},
    {EAGAIN, "EAGAIN: resource temporarily unavailable"},
    {ENOMEM, "ENOMEM: out of memory"},
    {EACCES, "EACCES: permission denied"},
    {EFAULT, "EFAULT: bad address"},
    {EBUSY, "EBUSY: device or resource busy"},
    {EEXIST, "EEXIST: file exists"},
    {EXDEV, "EXDEV: invalid cross-device link"},
    {ENODEV, "ENODEV: no such device"},
    {ENOTDIR, "ENOTDIR: a path component is not a directory"},
    {EISDIR, "EISDIR: is a directory"},
    {EINVAL, "EINVAL: invalid argument"},
    {ENFILE, "ENFILE: too many open files in system"},
    {EMFILE, "EMFILE: too many open files"},
    {ETXTBSY, "ETXTBSY: text file busy"},
    {EFBIG, "EFBIG: file too large"},
    {ENOSPC, "ENOSPC: no space left on device"},
    {ESPIPE, "ESPIPE: illegal seek"},
    {EROFS, "EROFS: read-only file system"},
    {EMLINK, "EMLINK: too many links"},
    {ERANGE, "ERANGE: result out of range"},
    {EDEADLK, "EDEADLK: resource deadlock avoided"},
    {ENAMETOOLONG, "ENAMETOOLONG: file name too long"},
    {ENOLCK, "ENOLCK: no locks available"},
    {ENOSYS, "ENOSYS: function not implemented"},
    {ENOTEMPTY, "ENOTEMPTY: directory not empty"},
    {ELOOP, "ELOOP: is a symbolic link"},
    {EOVERFLOW, "EOVERFLOW: value too large for defined data type"},
    {EOPNOTSUPP, "EOPNOTSUPP: operation not supported by the file system"},
    {ETIMEDOUT, "ETIMEDOUT: connection timed out"},
    {ESTALE, "ESTALE: stale file handle"},
    {EDQUOT, "EDQUOT: disk quota exceeded"},
    {EUCLEAN, "EUCLEAN: structure needs cleaning"},
};

RARE const char *os_strerror(int err, char *buf, size_t len) {
  for (size_t i = 0; i < sizeof os_errors / sizeof os_errors[0]; i++)
    if (os_errors[i].err == err) return os_errors[i].text;
  if (len) {
    size_t i = 0;
    const char *pre = "errno ";
    while (*pre && i + 1 < len) buf[i++] = *pre++;
    char tmp[12];
    int n = 0;
    unsigned v = (unsigned)err;
    do tmp[n++] = (char)('0' + v % 10); while ((v /= 10) && n < 11);
    while (n && i + 1 < len) buf[i++] = tmp[--n];
    buf[i] = 0;
  }
  return buf;
}

// ---------------------------------------------------------------------------
// Process life: fork children's private copies, exit and exec

int os_map_anon(size_t len, uintptr_t *out) {
  long r = do_mmap(0, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mmap_failed(r)) return (int)r;
  *out = (uintptr_t)r;
  return 0;
}

int os_move(uintptr_t from, size_t len, uintptr_t to) {
  int f = FAULT(OS_FAULT_MREMAP);
  if (f) return f;
  long r = SYS6(SYS_mremap, from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED,
                to, 0);
  return mmap_failed(r) ? (int)r : 0;
}

int os_getpid(void) { return (int)SYS3(SYS_getpid, 0, 0, 0); }

void os_yield(void) { SYS3(SYS_sched_yield, 0, 0, 0); }

void os_wait_while(int *addr, int val) {
  SYS6(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, 0, 0, 0);
}

void os_wake_all(int *addr) {
  SYS6(SYS_futex, addr, FUTEX_WAKE_PRIVATE, 0x7fffffff, 0, 0, 0);
}

// membarrier commands (linux/membarrier.h)
#define MB_PRIVATE_EXPEDITED (1 << 3)
#define MB_REGISTER_PRIVATE_EXPEDITED (1 << 4)

void os_barrier_all(void) {
  static int state;  // 0 untried, 1 membarrier works, 2 use the fallback
  static char *page;
  int st = __atomic_load_n(&state, __ATOMIC_ACQUIRE);
  if (st == 0) {
    // Registration is per process and idempotent: racing callers are fine.
    long r = SYS3(SYS_membarrier, MB_REGISTER_PRIVATE_EXPEDITED, 0, 0);
    st = r == 0 ? 1 : 2;
    __atomic_store_n(&state, st, __ATOMIC_RELEASE);
  }
  if (st == 1 && SYS3(SYS_membarrier, MB_PRIVATE_EXPEDITED, 0, 0) == 0)
    return;
  // The fallback: lowering the protection of a page that is present makes
  // the kernel flush it from the TLB of every CPU that may run this
  // process, with an interrupt, which serialises each of them.
  if (!page) {
    long r = SYS6(SYS_mmap, 0, 4096, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mmap_failed(r)) {
      __atomic_thread_fence(__ATOMIC_SEQ_CST);
      return;
    }
    page = (char *)r;
  }
  *(volatile char *)page = 1;
  SYS3(SYS_mprotect, page, 4096, PROT_READ);
  SYS3(SYS_mprotect, page, 4096, PROT_READ | PROT_WRITE);
}

uint64_t os_time(void) {
  struct timespec ts = {0, 0};
  SYS3(SYS_clock_gettime, CLOCK_REALTIME, &ts, 0);
  return (uint64_t)ts.tv_sec;
}

uint64_t os_clock_ms(void) {
  struct timespec ts = {0, 0};
  // libc's clock_gettime reads the vDSO: no system call, no allocation.
  // The coarse clock (a few ms of resolution) is the cheapest there.
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

unsigned long os_syscalls(void) {
  return __atomic_load_n(&syscalls, __ATOMIC_RELAXED);
}

void os_random(void *buf, size_t len) {
  long r = SYS3(SYS_getrandom, buf, len, GRND_NONBLOCK);
  if (r == (long)len) return;
  // No entropy yet (early boot) or no getrandom: unique, not secret.
  struct timespec ts = {0, 0};
  SYS3(SYS_clock_gettime, CLOCK_MONOTONIC, &ts, 0);
  uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
               ((uint64_t)os_getpid() << 48) ^ (uintptr_t)buf;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    ((unsigned char *)buf)[i] = (unsigned char)x;
  }
}

// Reads the small /proc file at path into buf (NUL-terminated); its length.
static long read_proc(const char *path, char *buf, size_t len) {
  int fd = (int)SYS6(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0, 0,
                     0);
  if (fd < 0) return fd;
  long n = 0, r;
  while ((size_t)n + 1 < len &&
         (r = SYS3(SYS_read, fd, buf + n, len - 1 - (size_t)n)) != 0) {
    if (r == -EINTR) continue;
    if (r < 0) {
      n = r;
      break;
    }
    n += r;
  }
  SYS3(SYS_close, fd, 0, 0);
  if (n >= 0) buf[n] = 0;
  return n;
}

int os_thread_count(void) {
  // Field 20 of /proc/self/stat; field 2 (the name, in parentheses) may
  // hold blanks and parentheses: count from the last ')'.
  char buf[1024];
  long n = read_proc("/proc/self/stat", buf, sizeof buf);
  if (n < 0) return (int)n;
  const char *s = strrchr(buf, ')');
  if (!s) return -EIO;
  for (int field = 2; field < 20; field++) {
    s = strchr(s + 1, ' ');
    if (!s) return -EIO;
  }
  int v = 0;
  for (s++; *s >= '0' && *s <= '9'; s++) v = v * 10 + (*s - '0');
  return v > 0 ? v : -EIO;
}

int os_program_name(char *buf, size_t len) {
  long n = read_proc("/proc/self/comm", buf, len);
  if (n < 0) return (int)n;
  while (n > 0 && buf[n - 1] == '\n') buf[--n] = 0;
  return (int)n;
}

// ---------------------------------------------------------------------------
// Dirty-page tracking (os.h). The constants of Linux 6.7 that older
// headers lack.

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#define UFFD_WP_UNPOPULATED (1ULL << 13)
#define UFFD_WP_ASYNC (1ULL << 15)

struct pm_scan_arg {
  uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
  uint64_t category_inverted, category_mask, category_anyof_mask;
  uint64_t return_mask;
};
#define PM_PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PM_PAGE_IS_WRITTEN (1ULL << 1)
#define PM_PAGE_IS_PRESENT (1ULL << 3)
#define PM_PAGE_IS_SWAPPED (1ULL << 4)
#define PM_SCAN_WP_MATCHING (1ULL << 0)
#define PM_SCAN_CHECK_WPASYNC (1ULL << 1)

RARE int os_uffd_open(void) {
  // User faults only: all that asynchronous write-protect needs (the
  // kernel resolves its own writes without us), and what an unprivileged
  // process is allowed. Kernels before 5.11 do not know the flag.
  long fd = SYS3(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY,
                 0, 0);
  if (fd == -EINVAL) fd = SYS3(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK, 0, 0);
  if (fd < 0) return (int)fd;
  struct uffdio_api api = {.api = UFFD_API,
                           .features = UFFD_WP_ASYNC | UFFD_WP_UNPOPULATED};
  long r = SYS3(SYS_ioctl, fd, UFFDIO_API, &api);
  if (r == 0 && (api.features & (UFFD_WP_ASYNC | UFFD_WP_UNPOPULATED)) !=
                    (UFFD_WP_ASYNC | UFFD_WP_UNPOPULATED))
    r = -EOPNOTSUPP;
  if (r) {
    SYS3(SYS_close, fd, 0, 0);
    return r == -EINVAL ? -EOPNOTSUPP : (int)r;
  }
  return (int)fd;
}

int os_uffd_register_wp(int uffd, uintptr_t addr, size_t len) {
  struct uffdio_register reg = {.range = {.start = addr, .len = len},
                                .mode = UFFDIO_REGISTER_MODE_WP};
  return (int)SYS3(SYS_ioctl, uffd, UFFDIO_REGISTER, &reg);
}

int os_pagemap_open(void) {
  return (int)SYS6(SYS_openat, AT_FDCWD, "/proc/self/pagemap",
                   O_RDONLY | O_CLOEXEC, 0, 0, 0);
}

RARE long os_pagemap_scan(int fd, int what, uintptr_t start, uintptr_t end,
                          struct os_region *vec, size_t n,
                          uintptr_t *walk_end) {
  struct pm_scan_arg a;
  memset(&a, 0, sizeof a);
  a.size = sizeof a;
  a.start = start;
  a.end = end;
  a.vec = (uint64_t)(uintptr_t)vec;
  a.vec_len = n;
  if (what == OS_SCAN_UNPOPULATED) {
    a.category_inverted = PM_PAGE_IS_PRESENT | PM_PAGE_IS_SWAPPED;
    a.category_mask = PM_PAGE_IS_PRESENT | PM_PAGE_IS_SWAPPED;
    a.return_mask = PM_PAGE_IS_PRESENT;
  } else {
    a.category_mask = PM_PAGE_IS_WRITTEN;
    a.return_mask = PM_PAGE_IS_WRITTEN | PM_PAGE_IS_PRESENT;
    a.flags = PM_SCAN_CHECK_WPASYNC;
    if (what == OS_SCAN_WRITTEN_PROTECT) a.flags |= PM_SCAN_WP_MATCHING;
  }
  long r;
  do r = SYS3(SYS_ioctl, fd, PM_PAGEMAP_SCAN, &a);
  while (r == -EINTR);
  if (r == -ENOTTY || r == -EINVAL) return -EOPNOTSUPP;
  *walk_end = (uintptr_t)a.walk_end;
  for (long k = 0; k < r; k++)
    vec[k].categories = vec[k].categories & PM_PAGE_IS_PRESENT
                            ? OS_REGION_PRESENT : 0;
  return r;
}

int os_punch_hole(int fd, uint64_t off, uint64_t len) {
  long r;
  do r = SYS6(SYS_fallocate, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
              off, len, 0, 0);
  while (r == -EINTR);
  return (int)r;
}

int os_file_stamp(int fd, uint64_t *ino, uint64_t *mtime_ns) {
  struct stat st;
  long r = SYS3(SYS_fstat, fd, &st, 0);
  if (r < 0) return (int)r;
  *ino = (uint64_t)st.st_ino;
  *mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000u +
              (uint64_t)st.st_mtim.tv_nsec;
  return 0;
}
