// misuse_probe.c: a program that misuses free as real programs do, run under
// the preload library (tests/preload/CMakeLists.txt): `double` frees a block
// twice, `remote` frees on another thread a block already freed, `realloc`
// reallocs a freed block (to a size that moves it), `realloc_fit` to a size
// that would fit in place, `realloc_interior` reallocs a 16-aligned pointer
// inside a live block (realloc's fast path checks what free's does not).
// Each must stop the program with SIGABRT and one
// line "mmpool: CALL(): ... 0x... in pool 'default'", as glibc would stop
// it. Reaching the end is a failure (exit 1).
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *free_it(void *b) {
  free(b);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  char *keep = malloc(48);  // a neighbour that must stay intact
  char *a = malloc(48);
  if (!keep || !a) return 3;
  strcpy(keep, "neighbour");
  strcpy(a, "victim");
  if (strcmp(argv[1], "double") == 0) {
    free(a);
    free(a);
  } else if (strcmp(argv[1], "remote") == 0) {
    free(a);
    pthread_t t;
    if (pthread_create(&t, NULL, free_it, a) != 0) return 4;
    pthread_join(t, NULL);
  } else if (strcmp(argv[1], "realloc") == 0) {
    free(a);
    a = realloc(a, 4000);
  } else if (strcmp(argv[1], "realloc_fit") == 0) {
    free(a);
    a = realloc(a, 40);
  } else if (strcmp(argv[1], "realloc_interior") == 0) {
    char *big = malloc(200);
    if (!big) return 3;
    big = realloc(big + 32, 300);
  } else {
    return 2;
  }
  printf("not stopped (%s)\n", keep);
  return 1;
}
