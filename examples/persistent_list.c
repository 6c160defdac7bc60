// persistent_list.c: a linked list of strings that lives in a pool file and
// grows by one node each time the program runs.
//
// The pool file is mapped at a fixed base address, so the plain C pointers
// stored in it (the root, every `next`) are still valid when a later run
// maps the file again: nothing is serialised, nothing is fixed up.
//
// Build against an installed mmpool (cmake --install build --prefix PREFIX;
// add PREFIX/lib/pkgconfig to PKG_CONFIG_PATH if PREFIX is not /usr):
//   flags=$(pkg-config --cflags --libs mmpool)
//   cc -o persistent_list persistent_list.c $flags
// Run (LD_LIBRARY_PATH=PREFIX/lib if the loader does not search PREFIX):
//   ./persistent_list                       # appends "hello 1" to ./list.pool
//   ./persistent_list ./list.pool "second"  # appends "second"
//   ./persistent_list                       # appends "hello 3", prints 3 items
//   rm list.pool                            # start again
// In the build tree: build/examples/persistent_list /tmp/list.pool
//
// Usage: persistent_list [POOL-FILE [TEXT]]
//   POOL-FILE defaults to ./list.pool (no blanks: pool options are words);
//   TEXT defaults to "hello N", N being the new length of the list.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mmpool.h>

// Where the pool lives in every run: a 1 GiB-aligned address in mmpool's
// window (0x200000000000..0x3fffffffffff), and a capacity; both are recorded
// in the file and must be the same at each attach.
#define LIST_POOL_OPTIONS "base=0x300000000000 size=64M"
#define LIST_ROOT 0 // root key of the list header

struct node {
  struct node *next;
  char text[]; // NUL-terminated
};

struct list {
  size_t count;
  struct node *head;
  struct node *tail;
};

static int fail(const char *what) {
  fprintf(stderr, "persistent_list: %s: %s\n", what, mmpool_last_error());
  return 1;
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "./list.pool";
  if (*path == '\0' || strpbrk(path, " \t\n") != NULL) {
    fprintf(stderr, "persistent_list: the pool path may not be empty or "
                    "contain blanks\n");
    return 2;
  }

  char options[4096];
  int n = snprintf(options, sizeof options, "file=%s " LIST_POOL_OPTIONS, path);
  if (n < 0 || (size_t)n >= sizeof options) {
    fprintf(stderr, "persistent_list: pool path too long\n");
    return 2;
  }

  // Creates the file on the first run, attaches it on later ones. A file
  // left by a run that crashed is refused; add "recover" to the options to
  // check it and attach it anyway.
  mmpool_t *pool = mmpool_open("list", options);
  if (pool == NULL) return fail(path);

  struct list *list = mmpool_get_root(pool, LIST_ROOT);
  if (list == NULL) { // a new pool: make the list header and publish it
    list = mmpool_calloc(pool, 1, sizeof *list);
    if (list == NULL) return fail("calloc");
    if (mmpool_set_root(pool, LIST_ROOT, list) != 0) return fail("set_root");
  }

  char fallback[40];
  const char *text = fallback;
  if (argc > 2)
    text = argv[2];
  else
    snprintf(fallback, sizeof fallback, "hello %zu", list->count + 1);

  // Fill the node completely before it becomes reachable from the list.
  size_t len = strlen(text);
  struct node *node = mmpool_malloc(pool, sizeof *node + len + 1);
  if (node == NULL) return fail("malloc");
  node->next = NULL;
  memcpy(node->text, text, len + 1);
  if (list->tail != NULL)
    list->tail->next = node;
  else
    list->head = node;
  list->tail = node;
  list->count++;

  printf("%zu item%s in %s\n", list->count, list->count == 1 ? "" : "s", path);
  size_t i = 0;
  for (const struct node *p = list->head; p != NULL; p = p->next)
    printf("%4zu: %s\n", ++i, p->text);

  // Syncs the file, marks it clean and unmaps it.
  if (mmpool_close(pool) != 0) return fail("close");
  return 0;
}
