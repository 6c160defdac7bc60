// snap.c: the snapshots the configuration asks for (snapshot=DIR and
// snapshot-on=exit,signal:SIG,interval:TIME on a pool statement; one pool
// statement at most carries them, since a snapshot is of every pool).
//
// - signal: a handler that only records the request and wakes the
//   snapshot thread (a futex: async-signal-safe). The program's own
//   handler for that signal, installed later, replaces ours.
// - interval, signal: one thread of ours ("mmpool-snap"), started by the
//   preload library's constructor with every signal blocked, so that no
//   signal of the program is delivered to it. It takes the snapshots:
//   core/snapshot.c holds the program's threads only for the pause.
// - exit: life.c calls snap_at_exit before the file pools are let go.
// Only the process that read the configuration takes them, and it claims
// the directory for its life (snapshot_claim): a fork child has no
// snapshot thread and its exit takes none, and a program it starts that
// inherits the configuration finds the directory taken and takes none
// either (either would replace this process's snapshot with its own).
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>

#include "log.h"
#include "os.h"
#include "shim.h"
#include "snapshot.h"

static const struct pool_spec *snap_spec;  // the statement that asks
static int owner_pid;
static int request;  // set by the signal handler; futex word

static void on_signal(int sig) {
  (void)sig;
  __atomic_store_n(&request, 1, __ATOMIC_RELEASE);
  os_wake_all(&request);
}

static void take(const char *why) {
  int r = snapshot_take(snap_spec->snap_dir);
  if (snapshot_failed_once(r ? -r : 0) && r)
    log_print(LOG_WARN, "%s (snapshot at %s; said once for this cause)",
              log_last_error(), why);
}

RARE static void *snap_thread(void *arg) {
  (void)arg;
  prctl(PR_SET_NAME, "mmpool-snap", 0, 0, 0);
  // The first freeze registers the process for membarrier, which takes
  // milliseconds: here, not in the first snapshot's pause.
  os_barrier_all();
  uint64_t period = (uint64_t)snap_spec->snap_interval * 1000000000u;
  int interval = (snap_spec->snap_on & SPEC_SNAP_ON_INTERVAL) != 0;
  uint64_t next = os_now_ns() + period;
  for (;;) {
    uint64_t now = os_now_ns();
    if (__atomic_exchange_n(&request, 0, __ATOMIC_ACQ_REL)) {
      take("a signal");
      continue;
    }
    if (interval && now >= next) {
      take("an interval");
      next = os_now_ns() + period;
      continue;
    }
    if (interval) os_wait_while_ns(&request, 0, next - now);
    else os_wait_while(&request, 0);
  }
  return NULL;
}

static void snap_at_exit(void);

void snap_start(void) {
  for (unsigned i = 0; i < shim_cfg.npools && i < CONFIG_MAX_POOLS; i++)
    if (shim_cfg.pools[i].spec.snap_dir[0]) snap_spec = &shim_cfg.pools[i].spec;
  if (!snap_spec) return;
  owner_pid = os_getpid();
  snapshot_set_incremental(!snap_spec->snap_full);
  int c = snapshot_claim(snap_spec->snap_dir);
  if (c) {
    // Held by another process: the normal case of a program started by
    // one that takes its snapshots there and passed its configuration on
    // (as for a file pool in use): said at info level only.
    log_print(c == -EBUSY ? LOG_INFO : LOG_WARN, "%s: this process takes "
              "no snapshot", log_last_error());
    snap_spec = NULL;
    return;
  }
  unsigned on = snap_spec->snap_on;
  if (on & SPEC_SNAP_ON_EXIT)
    __atomic_store_n(&life_exit_hook, snap_at_exit, __ATOMIC_RELEASE);
  if (!(on & (SPEC_SNAP_ON_SIGNAL | SPEC_SNAP_ON_INTERVAL))) return;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  int r = pthread_create(&t, &at, snap_thread, NULL);
  pthread_attr_destroy(&at);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (r) {
    char eb[32];
    log_print(LOG_ERROR, "snapshot=%s: cannot start the snapshot thread "
              "(%s): snapshots are taken at exit only",
              snap_spec->snap_dir, os_strerror(r, eb, sizeof eb));
    return;
  }
  if (on & SPEC_SNAP_ON_SIGNAL) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(snap_spec->snap_signal, &sa, NULL);
  }
}

static void snap_at_exit(void) {
  if (!snap_spec || !(snap_spec->snap_on & SPEC_SNAP_ON_EXIT) ||
      os_getpid() != owner_pid)
    return;
  // The snapshot thread may be taking one: wait for it (a few seconds).
  int r;
  for (int tries = 0;; tries++) {
    r = snapshot_take(snap_spec->snap_dir);
    if (r != -EBUSY || tries == 300) break;
    os_wait_while_ns(&request, request, 20000000);
  }
  if (r) log_print(LOG_WARN, "%s (snapshot at exit)", log_last_error());
}
