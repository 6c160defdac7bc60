/* larson: a server whose threads free each other's blocks. A shared array
 * of 1024*THREADS slots; each thread, SCALE*1000 times, takes a random slot
 * (any thread's), swaps a new block of 16..1024 bytes in with an atomic
 * exchange and frees the old one, checking its stamp: most blocks are
 * freed by a thread other than the one that allocated them. */
#include "wl.h"

typedef struct { uint32_t size, stamp; } hdr;
typedef struct { int id; long n; hdr *_Atomic *slots; size_t nslots; uint64_t freed; } arg_t;

static hdr *mk(uint64_t *s) {
  uint32_t size = 16 + (uint32_t)(wl_rand(s) % 1009);
  hdr *h = malloc(size);
  if (!h) WL_FAIL("larson: malloc");
  h->size = size; h->stamp = size * 2654435761u;
  ((unsigned char *)h)[size - 1] = (unsigned char)size;
  return h;
}
static void chk(hdr *h) {
  if (h->stamp != h->size * 2654435761u ||
      ((unsigned char *)h)[h->size - 1] != (unsigned char)h->size)
    WL_FAIL("larson: block corrupted");
}

static void *work(void *p) {
  arg_t *a = p;
  uint64_t s = 777 + (uint64_t)a->id * 31;
  for (long i = 0; i < a->n; i++) {
    size_t k = wl_rand(&s) % a->nslots;
    hdr *old = __atomic_exchange_n(&a->slots[k], mk(&s), __ATOMIC_ACQ_REL);
    chk(old); free(old); a->freed++;
  }
  return NULL;
}

int main(int argc, char **argv) {
  int t; long scale;
  wl_args(argc, argv, &t, &scale, 2000);
  size_t ns = 1024 * (size_t)t;
  hdr *_Atomic *slots = calloc(ns, sizeof *slots);
  uint64_t s = 1;
  for (size_t i = 0; i < ns; i++) slots[i] = mk(&s);
  arg_t *a = calloc((size_t)t, sizeof *a);
  for (int i = 0; i < t; i++) {
    a[i].id = i; a[i].n = scale * 1000 / t; a[i].slots = slots; a[i].nslots = ns;
  }
  wl_run_threads(t, work, a, sizeof *a);
  uint64_t freed = 0, h = 0;
  for (int i = 0; i < t; i++) freed += a[i].freed;
  for (size_t i = 0; i < ns; i++) { chk(slots[i]); h += slots[i]->size; free(slots[i]); }
  if (freed != (uint64_t)(scale * 1000 / t) * (uint64_t)t) WL_FAIL("larson: count");
  printf("OK larson threads=%d scale=%ld checksum=%016llx\n", t, scale,
         (unsigned long long)wl_mix(freed, ns));
  (void)h;
  free(slots); free(a);
  return 0;
}
