// brk_persist.c: a program break that outlives the process (shim/brk.c, a
// file pool marked brk). Run by persist.sh, several times on one file.
//
// Usage: brk_persist new|N [exec|kill]
// The heap is laid out from the break down, as a legacy program that keeps
// nothing else would find it: N records of REC bytes from the region's
// start, then a footer that ends at the break and says where the records
// start and how many there are. `new` expects a fresh region (sbrk(0) is
// its start, nothing is read below it); N expects the footer below sbrk(0)
// with N records, and checks every byte of them. Either way the program
// appends one record (the growth must read zeros), moves the footer above
// it, and prints "region START break BREAK records M". A fork child then
// moves the break and scribbles over the footer: its copy is its own, so
// the next run finds this one's heap. With `exec`, the program then execs
// itself as `brk_persist M`: the new program must find the break this one
// left (the preload library lets the file go before the exec, and the new
// image attaches it as a next run would). With `kill` it dies of SIGKILL
// instead of exiting: the file stays unclean, and the header's record is
// where the break was. Exit status 1, with one line on stderr, when
// anything is not as expected.
#define _GNU_SOURCE
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define REC 40000 // bytes of a record: not a multiple of a page
#define MAGIC 0x6b61657262706d6dull

struct footer {
  uint64_t magic;
  uint64_t nrec;
  uint64_t start; // the address of record 0
  uint64_t check; // magic ^ nrec ^ start
};

static _Noreturn void fail(const char *what, const void *at) {
  fprintf(stderr, "brk_persist: %s (at %p)\n", what, at);
  exit(1);
}

static unsigned char byte_of(uint64_t rec, size_t i) {
  return (unsigned char)(rec * 7 + i * 131 + (i >> 12));
}

int main(int argc, char **argv) {
  if (argc != 2 && !(argc == 3 && (strcmp(argv[2], "exec") == 0 ||
                                   strcmp(argv[2], "kill") == 0))) {
    fprintf(stderr, "usage: brk_persist new|N [exec|kill]\n");
    return 2;
  }
  char *brk0 = sbrk(0);
  if (brk0 == (char *)-1) fail("sbrk(0) failed", NULL);
  uint64_t n = 0;
  char *start = brk0;
  if (strcmp(argv[1], "new") != 0) {
    uint64_t want = strtoull(argv[1], NULL, 10);
    struct footer f;
    memcpy(&f, brk0 - sizeof f, sizeof f);
    if (f.magic != MAGIC || f.check != (f.magic ^ f.nrec ^ f.start))
      fail("no footer below the break: the break did not resume", brk0);
    if (f.nrec != want) fail("the footer counts other records", brk0);
    start = (char *)(uintptr_t)f.start;
    if (start + f.nrec * REC + sizeof f != brk0)
      fail("the break is not where the last run left it", brk0);
    for (uint64_t r = 0; r < f.nrec; r++)
      for (size_t i = 0; i < REC; i++)
        if ((unsigned char)start[r * REC + i] != byte_of(r, i))
          fail("a record lost its bytes", start + r * REC + i);
    n = f.nrec;
    if (sbrk(-(intptr_t)sizeof f) != brk0)
      fail("sbrk could not take the footer back", brk0);
  }
  char *rec = sbrk(REC);
  if (rec != start + n * REC) fail("sbrk(REC) did not return the break", rec);
  for (size_t i = 0; i < REC; i++)
    if (rec[i]) fail("a growth of the break read a non-zero byte", rec + i);
  for (size_t i = 0; i < REC; i++)
    rec[i] = (char)byte_of(n, i);
  n++;
  struct footer f = {MAGIC, n, (uint64_t)(uintptr_t)start, 0};
  f.check = f.magic ^ f.nrec ^ f.start;
  char *at = sbrk(sizeof f);
  if (at != rec + REC) fail("sbrk(footer) did not return the break", at);
  memcpy(at, &f, sizeof f);
  printf("region %p break %p records %" PRIu64 "\n", (void *)start, sbrk(0), n);
  fflush(stdout);

  pid_t pid = fork();
  if (pid < 0) fail("fork failed", NULL);
  if (pid == 0) {
    char *c = sbrk(8192);
    if (c != at + sizeof f) _exit(3);
    memset(at - 100, 0xEE, 100 + sizeof f + 8192);
    exit(0); // through the exit handlers, as a program would
  }
  int st;
  if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail("the fork child failed", NULL);
  if (sbrk(0) != at + sizeof f || memcmp(at, &f, sizeof f) != 0)
    fail("the fork child's break reached the parent", at);
  if (argc == 3 && strcmp(argv[2], "kill") == 0) kill(getpid(), SIGKILL);
  if (argc == 3) {
    char m[32];
    snprintf(m, sizeof m, "%" PRIu64, n);
    execl("/proc/self/exe", argv[0], m, (char *)NULL);
    fail("exec failed", NULL);
  }
  return 0;
}
