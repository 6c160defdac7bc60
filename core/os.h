// os.h: the operating-system contract of the engine.
//
// core/os_linux.c is the only file that calls mmap, munmap, mprotect,
// madvise, fallocate, msync and the file calls the pools need. Everything
// goes through raw system calls, so no libc wrapper that another preload
// library (or our own shim) interposes can run, or allocate, underneath us.
// Every function returns 0 or a result >= 0 on success and a negative errno
// value on failure; none of them changes errno.
#ifndef MMPOOL_OS_H
#define MMPOOL_OS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

// Reserves [addr, addr+len) as PROT_NONE, MAP_NORESERVE anonymous memory.
// addr != 0: exactly there (MAP_FIXED_NOREPLACE; -EEXIST when anything is
// mapped in the range, and the existing mapping is untouched).
// addr == 0: wherever the kernel likes. *out receives the address.
int os_reserve(uintptr_t addr, size_t len, uintptr_t *out);
// Makes [addr, addr+len) of an own reservation read-write anonymous memory.
int os_commit(uintptr_t addr, size_t len);
// Maps file fd at [off, off+len) over [addr, addr+len) of an own reservation.
int os_map_file(uintptr_t addr, size_t len, int fd, uint64_t off, int shared);
// Maps [0, len) of file fd privately (copy-on-write: nothing reaches the
// file) wherever the kernel likes, read-only unless writable; for reading
// pool files that are not attached (vmmap_view). Past file_len (when len
// is more) the mapping is anonymous zeros. Unmap with os_unmap.
int os_map_copy(int fd, size_t file_len, size_t len, int writable,
                uintptr_t *out);
// Drops the pages of a private anonymous range; it reads as zeros after.
int os_purge(uintptr_t addr, size_t len);
// madvise(MADV_HUGEPAGE): transparent huge pages where they fit.
int os_advise_huge(uintptr_t addr, size_t len);
// madvise(MADV_POPULATE_WRITE): the pages of [addr, addr + len) made
// present and writable now (Linux 5.14; -EINVAL before).
int os_populate_write(uintptr_t addr, size_t len);
// MADV_FREE: the kernel takes the pages when it needs memory, not before;
// until then they keep their bytes (they do not read as zeros after).
int os_purge_lazy(uintptr_t addr, size_t len);
int os_unmap(uintptr_t addr, size_t len);
// Writes a shared file mapping's dirty pages to the file and waits.
int os_msync(uintptr_t addr, size_t len);
// Best effort: names an anonymous range in /proc/self/maps ("[anon:NAME]").
void os_name_range(uintptr_t addr, size_t len, const char *name);

// Files. os_open refuses a symbolic link as the last component
// (O_NOFOLLOW) and sets O_CLOEXEC.
int os_open(const char *path, int flags, int mode);
// Like os_open, but no component of path may be a symbolic link (-ELOOP):
// openat2 with RESOLVE_NO_SYMLINKS, or on kernels without openat2 a walk
// of the path one component at a time (os_open_walk). Pool files.
int os_open_nolinks(const char *path, int flags, int mode);
// The fallback of os_open_nolinks, exposed for its unit test: every
// directory is opened O_PATH|O_NOFOLLOW and checked, the last component is
// opened O_NOFOLLOW. Fixed-size buffers only (-ENAMETOOLONG past them).
int os_open_walk(const char *path, int flags, int mode);
int os_close(int fd);
int os_unlink(const char *path);
struct os_stat {
  uint64_t size;
  uint64_t dev, ino;  // the file's identity
  uint32_t uid;       // owner
  uint32_t mode;      // st_mode: type and permission bits
  uint32_t nlink;     // hard links: a file named elsewhere too when > 1
  int is_regular;
};
int os_file_stat(int fd, struct os_stat *st);
// Size, whether it is a regular file, and its identity (device, inode).
int os_file_size(int fd, uint64_t *size, int *is_regular, uint64_t *dev,
                 uint64_t *ino);
// The effective user id of the process.
uint32_t os_geteuid(void);
int os_pread_full(int fd, void *buf, size_t len, uint64_t off);
int os_allocate(int fd, uint64_t off, uint64_t len);  // fallocate, mode 0
int os_truncate(int fd, uint64_t len);
int os_fsync(int fd);
// Starts writing fd's dirty pages to its device and returns without
// waiting (sync_file_range, SYNC_FILE_RANGE_WRITE): a later fsync then
// waits for what is left. Errors are the caller's to ignore.
int os_writeback(int fd);
// flock: exclusive or shared, never waits (-EWOULDBLOCK when taken).
int os_lock_file(int fd, int exclusive);
int os_unlock_file(int fd);

// Writes all of buf to fd (retrying short writes and EINTR).
int os_write_all(int fd, const void *buf, size_t len);

// One line describing the first mapping of this process that overlaps
// [addr, addr+len), from /proc/self/maps ("0x...-0x... rw-p /path"), or
// "an unknown mapping" when it cannot be read. Never allocates.
void os_describe_mapping(uintptr_t addr, size_t len, char *out, size_t outlen);

// Process life (fork children's private copies, exit, exec, path patterns).
// Read-write anonymous memory anywhere (a temporary copy).
int os_map_anon(size_t len, uintptr_t *out);
// Moves the pages of [from, from+len) to [to, to+len), replacing whatever
// was mapped there (mremap MAYMOVE|FIXED); from is unmapped after.
int os_move(uintptr_t from, size_t len, uintptr_t to);
int os_getpid(void);
// Every running thread of the process executes a full memory barrier
// before this returns (membarrier PRIVATE_EXPEDITED; where the kernel
// refuses it, a TLB shootdown forced by mprotect, which interrupts every
// CPU running the process the same way).
void os_barrier_all(void);
void os_yield(void);
// Sleeps while *addr == val (a private futex; may wake early: callers
// loop); wakes every thread sleeping on addr.
void os_wait_while(int *addr, int val);
void os_wake_all(int *addr);
// Seconds since 1970 (CLOCK_REALTIME).
uint64_t os_time(void);
// Milliseconds of a monotonic clock (coarse: a few ms of resolution),
// read without a system call (the vDSO).
uint64_t os_clock_ms(void);
// len random bytes (getrandom); unique but predictable bytes when the
// kernel has none to give.
void os_random(void *buf, size_t len);
// Threads of this process (/proc/self/stat), or a negative errno.
int os_thread_count(void);
// The program's name (/proc/self/comm, at most 15 bytes); its length.
int os_program_name(char *buf, size_t len);

// Snapshots (core/snapshot.c): a directory of files written by a child.
// mkdir with mode, no link followed in the last component.
int os_mkdir(const char *path, int mode);
// openat relative to the directory dirfd (O_NOFOLLOW, O_CLOEXEC added).
int os_open_at(int dirfd, const char *name, int flags, int mode);
int os_rename_at(int dirfd, const char *from, const char *to);
int os_unlink_at(int dirfd, const char *name);
// Calls fn with the name of every entry of the directory dirfd (but "."
// and ".."), reading it with getdents64 into a fixed buffer; fn returns 0
// to go on. 0 or a negative errno value.
int os_list_dir(int dirfd, int (*fn)(void *arg, const char *name), void *arg);
// Writes all of buf at offset off (retrying short writes and EINTR).
int os_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
// Turns O_DIRECT on or off for fd (fcntl F_SETFL): writes then go from
// the caller's memory to the device, past the page cache, and must be
// aligned (offset, length and address: 4096 is always enough). 0 or a
// negative errno (-EINVAL where the file system has no direct I/O).
int os_set_direct(int fd, int on);
struct iovec;
// Copies this process's memory: src[i] into dst[i] for n pairs of equal
// lengths (process_vm_readv on itself). A page the program made
// unreadable fails the call with -EFAULT instead of a fault. The bytes
// copied, or a negative errno (-EPERM, -ENOSYS where a filter refuses it).
long os_copy_own(const struct iovec *dst, const struct iovec *src,
                 unsigned n);
// Writes the n buffers of iov one after the other from offset off
// (pwritev, retrying short writes and EINTR; iov is changed).
int os_pwritev_all(int fd, struct iovec *iov, int n, uint64_t off);
// Reads up to len bytes (retrying EINTR): the count, or a negative errno.
long os_read(int fd, void *buf, size_t len);
// A pipe, both ends close-on-exec.
int os_pipe(int fds[2]);
// A connected pair of stream sockets, both ends close-on-exec: a pipe
// whose writer, with os_send_all, gets EPIPE and no SIGPIPE when the
// reader is gone (a child that died early must not kill the program).
int os_socket_pair(int fds[2]);
int os_send_all(int fd, const void *buf, size_t len);
// A copy of the process (fork without the atfork handlers: a raw clone)
// that sends its parent no signal when it ends, so a program's own wait()
// and SIGCHLD handling never see it: 0 in the child, its pid in the
// parent, or a negative errno. The child may use raw system calls only.
int os_spawn_quiet(void);
// In such a child: every signal the program handles is set back to its
// default action (the program's handlers are not safe in a copy made
// without the atfork handlers: a fault there ends the copy, as it should,
// instead of running the program's SIGSEGV handler on locks copied held).
void os_signals_default(void);
// Waits for a child made by os_spawn_quiet; *status as wait(2) gives it.
int os_wait_quiet(int pid, int *status);
// 1 when the quiet child pid has ended and is reaped now (or is no child
// of this process), 0 while it runs. Never waits.
int os_reap_quiet(int pid);
// Closes every descriptor of the process but fd (close_range; nothing on
// kernels before 5.9).
void os_close_all_but(int fd);
// Ends the calling process at once (exit_group): no handler, no flush.
_Noreturn void os_exit(int code);
// Nanoseconds of CLOCK_MONOTONIC.
uint64_t os_now_ns(void);
// os_wait_while with a limit of ns nanoseconds.
void os_wait_while_ns(int *addr, int val, uint64_t ns);
// Sends sig to the process pid.
int os_kill(int pid, int sig);

// Dirty-page tracking (core/dirty.c): userfaultfd write-protect in
// asynchronous mode (the kernel resolves a write fault itself, kernel
// writes such as read(2) included) and PAGEMAP_SCAN (Linux 6.7;
// PITFALLS 6.7-6.9). os_uffd_open: a userfaultfd (close-on-exec, user
// faults only, so that an unprivileged process may have one where
// vm.unprivileged_userfaultfd is 0) with UFFD_FEATURE_WP_ASYNC and
// WP_UNPOPULATED: its fd, or -EPERM / -ENOSYS (refused), -EOPNOTSUPP
// (the kernel lacks a feature).
int os_uffd_open(void);
// Registers [addr, addr+len) (whole mappings, anonymous or shmem) for
// write-protect with the userfaultfd uffd; a part already registered with
// it stays as it is. -EINVAL for other mappings (files on disk).
int os_uffd_register_wp(int uffd, uintptr_t addr, size_t len);
// /proc/self/pagemap, for os_pagemap_scan. A descriptor keeps the process
// it was opened in: a copy of the process that inherits it scans its
// parent's pages.
int os_pagemap_open(void);
// A range found by os_pagemap_scan: the layout of the kernel's
// struct page_region.
struct os_region {
  uint64_t start, end, categories;
};
enum {
  OS_SCAN_WRITTEN_PROTECT = 0, // written since protected; protected again
  OS_SCAN_WRITTEN = 1,         // the same, nothing changed
  OS_SCAN_UNPOPULATED = 2,     // no page, nor swap: reads as zeros
};
// PAGEMAP_SCAN of [start, end) of the process of fd (os_pagemap_open) for
// the pages `what` names, into vec (at most n ranges): the count, with
// *walk_end where the scan stopped (end, or the first page not looked at
// when vec filled). -EOPNOTSUPP without PAGEMAP_SCAN; -EPERM when a
// mapping in the range is not registered for asynchronous write-protect
// (OS_SCAN_WRITTEN*). The written ranges come apart where pages are
// present and where not (purged since written: zeros), and have
// categories OS_REGION_PRESENT or 0.
#define OS_REGION_PRESENT 1u
long os_pagemap_scan(int fd, int what, uintptr_t start, uintptr_t end,
                     struct os_region *vec, size_t n, uintptr_t *walk_end);
// fallocate(PUNCH_HOLE | KEEP_SIZE): [off, off+len) of the file reads as
// zeros and holds no blocks. -EOPNOTSUPP where the file system cannot.
int os_punch_hole(int fd, uint64_t off, uint64_t len);
// A file's identity and last change: inode and modification time (ns).
int os_file_stamp(int fd, uint64_t *ino, uint64_t *mtime_ns);

// Like os_describe_mapping, for searches: 1 when a mapping overlaps
// [addr, addr+len) (its line in out when outlen, its end in *end when end
// is not NULL), 0 when none does, a negative errno value when
// /proc/self/maps cannot be read.
int os_find_mapping(uintptr_t addr, size_t len, uintptr_t *end, char *out,
                    size_t outlen);

// The soft RLIMIT_AS in bytes, or 0 when it is unlimited (or unreadable).
uint64_t os_as_limit(void);

// Fault injection, for tests (they link the static core): after
// os_fault_arm(kinds, nth, err), the nth call of any of the kinds (counted
// together) fails with -err without reaching the kernel; one failure, then
// the seam disarms itself. os_fault_arm(0, 0, 0) disarms. Unarmed, each
// wrapper pays one load and one predictable branch (os_fault_armed).
enum {
  OS_FAULT_MMAP = 1u << 0,      // os_reserve, os_map_file, internal maps
  OS_FAULT_MREMAP = 1u << 1,    // os_move (a fork child's pool copy)
  OS_FAULT_FTRUNCATE = 1u << 2, // os_truncate
  OS_FAULT_FALLOCATE = 1u << 3, // os_allocate
  OS_FAULT_OPEN = 1u << 4,      // os_open, os_open_nolinks, os_open_walk
  OS_FAULT_FSYNC = 1u << 5,     // os_fsync
  OS_FAULT_MPROTECT = 1u << 6,  // os_commit
  OS_FAULT_DIRECT = 1u << 7,    // os_set_direct turning O_DIRECT on
  OS_FAULT_ALL = (1u << 8) - 1,
};
void os_fault_arm(unsigned kinds, unsigned nth, int err)
    __attribute__((visibility("hidden")));
// How many injected failures happened since the last os_fault_arm.
unsigned os_fault_fired(void) __attribute__((visibility("hidden")));
// System calls made by the functions of this file since the start, for
// tests that show a path makes none (a relaxed count, exact while one
// thread calls).
unsigned long os_syscalls(void) __attribute__((visibility("hidden")));

// A few words for an errno value ("errno N" for the rare ones).
const char *os_strerror(int err, char *buf, size_t len);


#endif
