// lock.h: how every lock of the engine is taken (uses compiler.h only).
//
// Each lock is taken through engine_lock, which counts the locks this
// thread holds or is acquiring (tl_locks). fork's prepare handler can run
// in a signal handler that interrupted this very thread inside (or on the
// way into) a critical section; it then takes no lock at all, as glibc does
// for a single-threaded process (PITFALLS 4.3), instead of deadlocking on
// itself. Lock order: the freeze's lock (heap.c), the heap registry lock,
// a pool's lock, that pool's lazy-attach lock (page.c), then the
// address-space ledger's lock.
#ifndef MMPOOL_LOCK_H
#define MMPOOL_LOCK_H

#include <pthread.h>

#include "compiler.h"

extern __thread unsigned tl_locks HIDDEN;

static inline void engine_lock(pthread_mutex_t *m) {
  tl_locks++;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);  // counted before the attempt
  pthread_mutex_lock(m);
}

static inline void engine_unlock(pthread_mutex_t *m) {
  pthread_mutex_unlock(m);
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  tl_locks--;
}

#endif
