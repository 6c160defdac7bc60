// long_running.c: an ordinary C program, with no mmpool call in it, that
// runs until it is told to stop: its heap can be snapshotted while it runs.
//
// It keeps a table of linked lists (an "inventory" of items, each a small
// block that points to a name block) and changes it all the time: items
// are added, moved between lists and removed. Nothing in it knows of
// mmpool. Under the preload library with
//   snapshot=DIR snapshot-on=signal:USR2
// on its pool statement, `mmpool snapshot PID` makes the library take a
// snapshot of its heap at one instant, while it goes on: then `mmpool info
// DIR` shows what the heap held and `mmpool check DIR` that it is sound.
// SIGTERM ends it (with a snapshot at exit, if snapshot-on says exit).
//
// Build (no mmpool header, no -lmmpool):
//   cc -O2 -o long_running long_running.c
// Run:
//   export MMPOOL_CONFIG='pool default anon snapshot=snap snapshot-on=signal:USR2,exit'
//   mmpool run -- ./long_running &          # prints "running" and its pid
//   mmpool snapshot $!                      # a snapshot of its heap, now
//   mmpool info snap; mmpool check snap
//   kill $!                                 # ends it: one more at exit
//
// Usage: long_running [ITEMS]   (default 100000)
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct item {
  struct item *next;
  char *name;
  uint64_t count;
};

#define LISTS 1024
static struct item *lists[LISTS];
static volatile sig_atomic_t stop;

static void on_term(int sig) {
  (void)sig;
  stop = 1;
}

static struct item *make(uint64_t k) {
  struct item *it = malloc(sizeof *it);
  char buf[48];
  int n = snprintf(buf, sizeof buf, "item-%llu", (unsigned long long)k);
  it->name = malloc((size_t)n + 1 + k % 64);
  memcpy(it->name, buf, (size_t)n + 1);
  it->count = k;
  return it;
}

int main(int argc, char **argv) {
  uint64_t items = argc > 1 ? strtoull(argv[1], NULL, 10) : 100000;
  signal(SIGTERM, on_term);
  uint64_t rng = 88172645463325252ull, k = 0;
  for (; k < items; k++) {
    struct item *it = make(k);
    it->next = lists[k % LISTS];
    lists[k % LISTS] = it;
  }
  printf("running %d\n", (int)getpid());
  fflush(stdout);
  uint64_t rounds = 0;
  while (!stop) {
    // Take an item off one list, put a new one on another: the heap
    // changes all the time, its size stays about the same.
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    struct item **l = &lists[rng % LISTS];
    if (*l) {
      struct item *it = *l;
      *l = it->next;
      free(it->name);
      free(it);
    }
    struct item *it = make(k++);
    it->next = lists[(rng >> 20) % LISTS];
    lists[(rng >> 20) % LISTS] = it;
    if (++rounds % 100000 == 0) usleep(1000);
  }
  uint64_t live = 0;
  for (int i = 0; i < LISTS; i++)
    for (struct item *it = lists[i]; it; it = it->next) live++;
  printf("stopped after %llu rounds, %llu items\n",
         (unsigned long long)rounds, (unsigned long long)live);
  return 0;
}
