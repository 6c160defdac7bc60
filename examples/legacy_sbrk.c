// legacy_sbrk.c: a program with its own heap on the program break, written
// long before mmpool, whose heap persists in a file: the preload library
// serves sbrk from a pool marked `brk`, and a file pool keeps the break
// from run to run (docs/configuration.md, "Keeping a program's heap in a
// file").
//
// The program has a tiny allocator of its own (no malloc for its data): it
// moves the break up for each block, and keeps its bookkeeping in a record
// in the last 16 bytes below the break, so that all it needs to find its
// heap again is sbrk(0). A break at a page boundary means "no heap yet"
// (every fresh break region starts at one, and the allocator never leaves
// the break on one). Each run appends a note and 1000 numbers to the heap,
// checks everything earlier runs left there, and prints the notes.
//
// Build (no mmpool header, no -lmmpool):
//   cc -O2 -o legacy_sbrk legacy_sbrk.c
// Run, keeping the heap in legacy.pool:
//   export MMPOOL_CONFIG='pool legacy file=legacy.pool size=64M brk'
//   mmpool run -- ./legacy_sbrk "first note"    # a new heap
//   mmpool run -- ./legacy_sbrk "second note"   # finds it, adds to it
//   export MMPOOL_CONFIG='pool legacy file=legacy.pool mode=private brk'
//   mmpool run -- ./legacy_sbrk "a trial"       # sees the heap; the file
//                                               # keeps nothing of this run
//   rm legacy.pool                              # start again
// Without the configuration (or without mmpool) the break is a fresh one
// in every run, and each run starts a new heap.
//
// Usage: legacy_sbrk [NOTE]   (default "note from run N")
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MAGIC 0x7061656879636167ull // "gacyheap"
#define NUMBERS 1000                // per run
#define PAGE 4096

struct note {
  struct note *next;
  uint64_t run;
  uint64_t *numbers; // NUMBERS of them: run * 1000000 + i
  char text[];
};

struct heap {
  uint64_t magic;
  uint64_t runs;
  struct note *first, *last;
};

// The last 16 bytes below the break.
struct top {
  uint64_t magic;
  struct heap *heap;
};

static struct top *top_of(char *brk) { return (struct top *)(brk - 16); }

// n bytes from the break: the block starts where the top record was, and
// the record moves above it. The break never stops on a page boundary.
static void *heap_alloc(size_t n) {
  char *old = sbrk(0);
  struct top t = *top_of(old);
  n = (n + 15) & ~(size_t)15;
  if ((uintptr_t)(old + n) % PAGE == 0) n += 16;
  if (sbrk((intptr_t)n) == (void *)-1) return NULL;
  *top_of(old + n) = t;
  return old - 16;
}

static struct heap *heap_find_or_make(int *found) {
  char *brk = sbrk(0);
  *found = (uintptr_t)brk % PAGE != 0 && top_of(brk)->magic == MAGIC &&
           top_of(brk)->heap->magic == MAGIC;
  if (*found) return top_of(brk)->heap;
  char *p = sbrk(sizeof(struct heap) + 16);
  if (p == (void *)-1) return NULL;
  struct heap *h = (struct heap *)p;
  *h = (struct heap){MAGIC, 0, NULL, NULL};
  *top_of(p + sizeof *h + 16) = (struct top){MAGIC, h};
  return h;
}

int main(int argc, char **argv) {
  int found;
  struct heap *h = heap_find_or_make(&found);
  if (!h) {
    perror("legacy_sbrk: sbrk");
    return 1;
  }
  // Check what earlier runs left.
  uint64_t checked = 0;
  for (struct note *n = h->first; n; n = n->next)
    for (uint64_t i = 0; i < NUMBERS; i++, checked++)
      if (n->numbers[i] != n->run * 1000000 + i) {
        fprintf(stderr, "legacy_sbrk: run %llu's number %llu is lost\n",
                (unsigned long long)n->run, (unsigned long long)i);
        return 1;
      }
  h->runs++;
  char fallback[40];
  const char *text = argc > 1 ? argv[1] : fallback;
  snprintf(fallback, sizeof fallback, "note from run %llu",
           (unsigned long long)h->runs);
  struct note *n = heap_alloc(sizeof *n + strlen(text) + 1);
  uint64_t *numbers = heap_alloc(NUMBERS * sizeof *numbers);
  if (!n || !numbers) {
    perror("legacy_sbrk: sbrk");
    return 1;
  }
  for (uint64_t i = 0; i < NUMBERS; i++)
    numbers[i] = h->runs * 1000000 + i;
  *n = (struct note){NULL, h->runs, numbers};
  strcpy(n->text, text);
  if (h->last)
    h->last->next = n;
  else
    h->first = n;
  h->last = n;

  printf("run %llu: %s heap, %llu numbers of earlier runs checked\n",
         (unsigned long long)h->runs, found ? "found the" : "a new",
         (unsigned long long)checked);
  for (struct note *x = h->first; x; x = x->next)
    printf("  %llu: %s\n", (unsigned long long)x->run, x->text);
  printf("heap %p, break %p\n", (void *)h, sbrk(0));
  return 0;
}
