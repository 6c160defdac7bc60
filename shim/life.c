// life.c: the end of the program, and its replacement by exec.
//
// The file pools the preload library opened are let go, consistent, at
// exit and before a successful exec replaces the program, so that the next
// run (or the program exec starts, which inherits the configuration)
// attaches them without `recover`: core/pool.c, pool_release_files, does
// it in one routine (thread heaps given up, metadata checksum, clean flag,
// msync and fsync, unlock), in the order docs/engine.md gives.
//
// - exit: a destructor of the lowest priority. The preload library is
//   initialised first and finalised last, so it runs after the program's
//   atexit handlers and destructors and every other library's; the report
//   of MMPOOL_STATS (stats.c, a destructor of default priority) comes
//   before it. What still allocates after it (a library finalised later,
//   glibc's own frees) is served by the other pools; its frees of blocks
//   in a pool let go are ignored.
// - exec: each exec function of glibc is wrapped (they call the system
//   call directly, not execve through the PLT): the writers of earlier
//   snapshots still ending are waited for (they would be the new
//   program's children), the pools are let go, the real function runs,
//   and when it returns (it failed) they are taken back. A vfork child shares our memory and must not touch the pools:
//   pool_release_files does nothing in it (its pid is not the owner's).
//   posix_spawn's child runs no code of ours before its exec.
// - _exit and _Exit: wrapped too (dash, the usual /bin/sh, ends with
//   _exit; so do fork children): the pools are let go, then the process
//   ends at once as _exit promises (no handler of the program runs).
// - a signal, abort: nothing runs; the pool stays marked unclean and its
//   next user attaches it with `recover`.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "shim.h"
#include "snapshot.h"

#define EXPORT __attribute__((visibility("default")))

void (*life_exit_hook)(void);

static void before_release(void) {
  void (*hook)(void) = __atomic_load_n(&life_exit_hook, __ATOMIC_ACQUIRE);
  if (hook) hook();
}

__attribute__((destructor(101))) static void life_exit(void) {
  before_release();
  pool_release_files("exit");
}

EXPORT _Noreturn void _exit(int status) {
  before_release();
  pool_release_files("exit");
  for (;;) syscall(SYS_exit_group, status);
}

EXPORT _Noreturn void _Exit(int status) { _exit(status); }

// The C library's function name, found once.
static void *real(void **slot, const char *name) {
  void *fn = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
  if (!fn) {
    fn = dlsym(RTLD_NEXT, name);
    if (!fn) log_print(LOG_ERROR, "%s: the C library's %s is not found", name,
                       name);
    __atomic_store_n(slot, fn, __ATOMIC_RELEASE);
  }
  return fn;
}

// The C library's exec functions, found at start-up: a vfork child (whose
// exec is the common case: Python's subprocess) must not call dlsym, which
// may allocate in its parent's heap.
enum { X_EXECVE, X_EXECV, X_EXECVP, X_EXECVPE, X_FEXECVE, X_EXECVEAT, X_N };
static void *slots[X_N];
static const char *const names[X_N] = {"execve",  "execv",   "execvp",
                                       "execvpe", "fexecve", "execveat"};

__attribute__((constructor)) static void life_start(void) {
  for (int i = 0; i < X_N; i++) real(&slots[i], names[i]);
}

// Runs the exec call `call` between letting the pools go and taking them
// back; an exec that returns failed.
#define EXEC_WRAP(k, type, call)                                             \
  do {                                                                       \
    type fn = (type)real(&slots[k], names[k]);                               \
    if (!fn) {                                                               \
      errno = ENOSYS;                                                        \
      return -1;                                                             \
    }                                                                        \
    snapshot_reap_writers();                                                 \
    unsigned let_go = pool_release_files("exec");                            \
    int r = call;                                                            \
    int saved = errno;                                                       \
    if (let_go) pool_reclaim_files();                                        \
    errno = saved;                                                           \
    return r;                                                                \
  } while (0)

typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*execv_fn)(const char *, char *const[]);
typedef int (*fexecve_fn)(int, char *const[], char *const[]);
typedef int (*execveat_fn)(int, const char *, char *const[], char *const[],
                           int);

RARE EXPORT int execve(const char *path, char *const argv[],
                       char *const envp[]) {
  EXEC_WRAP(X_EXECVE, execve_fn, fn(path, argv, envp));
}

RARE EXPORT int execv(const char *path, char *const argv[]) {
  EXEC_WRAP(X_EXECV, execv_fn, fn(path, argv));
}

RARE EXPORT int execvp(const char *file, char *const argv[]) {
  EXEC_WRAP(X_EXECVP, execv_fn, fn(file, argv));
}

RARE EXPORT int execvpe(const char *file, char *const argv[],
                        char *const envp[]) {
  EXEC_WRAP(X_EXECVPE, execve_fn, fn(file, argv, envp));
}

RARE EXPORT int fexecve(int fd, char *const argv[], char *const envp[]) {
  EXEC_WRAP(X_FEXECVE, fexecve_fn, fn(fd, argv, envp));
}

RARE EXPORT int execveat(int dirfd, const char *path, char *const argv[],
                         char *const envp[], int flags) {
  EXEC_WRAP(X_EXECVEAT, execveat_fn, fn(dirfd, path, argv, envp, flags));
}

// execl, execle, execlp: the arguments gathered on the stack (as glibc
// does), then the v form above.
#define GATHER(first, ap, argv, extra)                                       \
  size_t n_ = 1;                                                             \
  va_start(ap, first);                                                       \
  while (va_arg(ap, char *)) n_++;                                           \
  va_end(ap);                                                                \
  char *argv[n_ + 1];                                                        \
  argv[0] = (char *)(first);                                                 \
  va_start(ap, first);                                                       \
  for (size_t i_ = 1; i_ <= n_; i_++) argv[i_] = va_arg(ap, char *);         \
  extra;                                                                     \
  va_end(ap)

RARE EXPORT int execl(const char *path, const char *arg, ...) {
  va_list ap;
  GATHER(arg, ap, argv, (void)0);
  return execv(path, argv);
}

RARE EXPORT int execlp(const char *file, const char *arg, ...) {
  va_list ap;
  GATHER(arg, ap, argv, (void)0);
  return execvp(file, argv);
}

RARE EXPORT int execle(const char *path, const char *arg, ...) {
  va_list ap;
  char **envp;
  GATHER(arg, ap, argv, envp = va_arg(ap, char **));
  return execve(path, argv, envp);
}
