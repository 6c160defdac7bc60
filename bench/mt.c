// mt.c: multi-threaded throughput, a larson-like workload with
// producer/consumer frees.
//
//   mt [-t THREADS] [-d SECONDS] [-m small|large] [-w SLOTS] [-r REMOTE_PCT]
//      [-s SEED]
//
// Each thread owns SLOTS slots (default 1000), filled at start. One operation:
// pick a random slot, take its block out, allocate a new block of a random
// size into the slot and write its first and last bytes. The block taken out
// is freed by this thread, or, with probability REMOTE_PCT % (default 25),
// handed to the next thread ((i + 1) % THREADS), which frees it: blocks
// cross threads the way they do between a producer and a consumer.
// Handed-off blocks travel in chains of 64 linked through their own first
// word; a chain is pushed onto the consumer's inbox with one CAS and the
// consumer takes the whole inbox with one exchange every 64 operations, so
// the hand-off itself costs little beside the allocator's remote free.
//
// Sizes: small = uniform in 16..1024; large = a power-of-two band chosen
// uniformly among [16,32) .. [32K,64K], then uniform in the band, i.e.
// log-uniform 16..65535 (as many 16-byte blocks as 32 KiB ones).
//
// Runs SECONDS (default 1.0) of wall time; prints one CSV line:
//   allocator,mix,threads,ops,seconds,ops_per_sec,cpu_seconds,ops_per_cpu_sec
// where an operation is one malloc and one free (local or remote), and
// cpu_seconds is the CPU time of the worker threads during the measurement,
// added up: on a shared machine, where the workers are descheduled at times,
// operations per CPU second are the steadier figure.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"

#define CHAIN 64      // blocks per hand-off
#define POLL_EVERY 64 // operations between looks at the inbox and the clock

struct node {
  struct node *next;
};

struct worker {
  // The inbox is written by the producer thread: keep it on its own line.
  _Alignas(64) _Atomic(struct node *) inbox;
  _Alignas(64) int id;
  uint64_t rng;
  void **slot;
  struct node *out_head, *out_tail; // chain being built for the next thread
  unsigned out_len;
  uint64_t ops;
  double cpu; // seconds of CPU time in the measured loop
  pthread_t tid;
};

static struct worker *workers;
static int nthreads = 1;
static double seconds = 1.0;
static int large_mix;
static unsigned nslots = 1000;
static unsigned remote_pct = 25;
static uint64_t seed = 42;
static pthread_barrier_t barrier;
static atomic_int stop;

static double clock_s(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
static double now_s(void) { return clock_s(CLOCK_MONOTONIC); }

static inline uint64_t rnd(uint64_t *s) { // xorshift64*
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static inline size_t rand_size(uint64_t *s) {
  uint64_t r = rnd(s);
  if (!large_mix) return 16 + (size_t)((r >> 32) % (1024 - 16 + 1));
  unsigned band = 4 + (unsigned)((r >> 8) % 12); // 2^4 .. 2^15
  size_t lo = (size_t)1 << band;
  return lo + (size_t)((r >> 32) % lo);
}

static inline void *alloc_block(uint64_t *s) {
  size_t n = rand_size(s);
  char *p = bench_malloc(n);
  if (p == NULL) {
    fprintf(stderr, "mt: malloc(%zu) failed\n", n);
    exit(1);
  }
  p[0] = 1;
  p[n - 1] = 1;
  return p;
}

static void push_chain(struct worker *w) {
  if (w->out_len == 0) return;
  struct worker *to = &workers[(w->id + 1) % nthreads];
  struct node *old = atomic_load_explicit(&to->inbox, memory_order_relaxed);
  do {
    w->out_tail->next = old;
  } while (!atomic_compare_exchange_weak_explicit(&to->inbox, &old, w->out_head,
                                                  memory_order_release,
                                                  memory_order_relaxed));
  w->out_head = w->out_tail = NULL;
  w->out_len = 0;
}

static void drain_inbox(struct worker *w) {
  if (atomic_load_explicit(&w->inbox, memory_order_relaxed) == NULL) return;
  struct node *n =
      atomic_exchange_explicit(&w->inbox, NULL, memory_order_acquire);
  while (n != NULL) {
    struct node *next = n->next;
    bench_free(n);
    n = next;
  }
}

static void *worker_main(void *arg) {
  struct worker *w = arg;
  for (unsigned i = 0; i < nslots; i++)
    w->slot[i] = alloc_block(&w->rng);
  pthread_barrier_wait(&barrier); // everyone filled
  pthread_barrier_wait(&barrier); // the main thread took the start time
  double cpu0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
  uint64_t ops = 0;
  for (;;) {
    for (unsigned k = 0; k < POLL_EVERY; k++) {
      uint64_t r = rnd(&w->rng);
      unsigned i = (unsigned)((r >> 16) % nslots);
      void *old = w->slot[i];
      w->slot[i] = alloc_block(&w->rng);
      if ((unsigned)(r % 100) < remote_pct) {
        struct node *n = old;
        n->next = NULL;
        if (w->out_tail)
          w->out_tail->next = n;
        else
          w->out_head = n;
        w->out_tail = n;
        if (++w->out_len == CHAIN) push_chain(w);
      } else {
        bench_free(old);
      }
    }
    ops += POLL_EVERY;
    drain_inbox(w);
    if (atomic_load_explicit(&stop, memory_order_relaxed)) break;
  }
  w->ops = ops;
  push_chain(w);
  w->cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - cpu0;
  pthread_barrier_wait(&barrier); // every chain is pushed
  drain_inbox(w);
  for (unsigned i = 0; i < nslots; i++)
    bench_free(w->slot[i]);
  return NULL;
}

static void usage(const char *argv0) {
  fprintf(stderr,
          "usage: %s [-t THREADS] [-d SECONDS] [-m small|large] [-w SLOTS] "
          "[-r REMOTE_PCT] [-s SEED]\n",
          argv0);
  exit(2);
}

static long parse_l(const char *s, long lo, long hi, const char *argv0) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) usage(argv0);
  return v;
}

int main(int argc, char **argv) {
  int c;
  while ((c = getopt(argc, argv, "t:d:m:w:r:s:")) != -1) {
    switch (c) {
    case 't':
      nthreads = (int)parse_l(optarg, 1, 1024, argv[0]);
      break;
    case 'd':
      seconds = strtod(optarg, NULL);
      if (!(seconds > 0 && seconds < 3600)) usage(argv[0]);
      break;
    case 'm':
      if (strcmp(optarg, "small") == 0)
        large_mix = 0;
      else if (strcmp(optarg, "large") == 0)
        large_mix = 1;
      else
        usage(argv[0]);
      break;
    case 'w':
      nslots = (unsigned)parse_l(optarg, 1, 1 << 24, argv[0]);
      break;
    case 'r':
      remote_pct = (unsigned)parse_l(optarg, 0, 100, argv[0]);
      break;
    case 's':
      seed = (uint64_t)parse_l(optarg, 0, 1L << 40, argv[0]);
      break;
    default:
      usage(argv[0]);
    }
  }
  if (optind != argc) usage(argv[0]);

  bench_init();
  // The workers' own bookkeeping comes from the C library, outside the
  // measurement; only blocks of the workload go through bench_malloc.
  workers = aligned_alloc(64, sizeof *workers * (size_t)nthreads);
  if (workers == NULL) return 1;
  memset(workers, 0, sizeof *workers * (size_t)nthreads);
  pthread_barrier_init(&barrier, NULL, (unsigned)nthreads + 1);
  for (int i = 0; i < nthreads; i++) {
    struct worker *w = &workers[i];
    w->id = i;
    w->rng = (seed + 1) * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(i + 1) << 32;
    w->slot = calloc(nslots, sizeof *w->slot);
    if (w->slot == NULL) return 1;
    atomic_init(&w->inbox, NULL);
    int e = pthread_create(&w->tid, NULL, worker_main, w);
    if (e != 0) {
      fprintf(stderr, "mt: pthread_create: %s\n", strerror(e));
      return 1;
    }
  }
  pthread_barrier_wait(&barrier); // filled
  double t0 = now_s();
  pthread_barrier_wait(&barrier); // go
  struct timespec ts = {(time_t)seconds,
                        (long)((seconds - (double)(time_t)seconds) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
  atomic_store(&stop, 1);
  pthread_barrier_wait(&barrier); // all stopped and pushed
  double t1 = now_s();
  uint64_t total = 0;
  double cpu = 0;
  for (int i = 0; i < nthreads; i++) {
    pthread_join(workers[i].tid, NULL);
    total += workers[i].ops;
    cpu += workers[i].cpu;
  }
  double dt = t1 - t0;
  printf("%s,%s,%d,%llu,%.3f,%.0f,%.3f,%.0f\n", BENCH_ALLOC_NAME,
         large_mix ? "large" : "small", nthreads, (unsigned long long)total, dt,
         (double)total / dt, cpu, cpu > 0 ? (double)total / cpu : 0.0);
  for (int i = 0; i < nthreads; i++)
    free(workers[i].slot);
  free(workers);
  return 0;
}
