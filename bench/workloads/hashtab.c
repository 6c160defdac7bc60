/* hashtab: a long-lived growing structure with lookups. One chained hash
 * table per thread grows to SCALE*1000 entries (keys of 8..64 bytes, its
 * bucket array doubled by realloc-free-rehash as it grows); after each
 * insertion a lookup of an earlier key, at the end every key is looked up
 * and the table is torn down. */
#include "wl.h"

typedef struct node { struct node *next; uint64_t v; size_t len; char key[]; } node;
typedef wl_arg arg_t;

static uint64_t hkey(const char *k, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)k[i]) * 1099511628211ULL;
  return h;
}
static size_t mkkey(char *buf, long i) {
  size_t len = 8 + (size_t)(i * 2654435761u % 57);
  for (size_t j = 0; j < len; j++) buf[j] = (char)('a' + (i >> (j % 20)) % 26 + j % 3);
  int w = snprintf(buf, len, "%ld", i); /* unique prefix */
  buf[w] = '#';
  return len;
}

static void *work(void *p) {
  arg_t *a = p;
  size_t cap = 16, cnt = 0;
  node **tab = calloc(cap, sizeof *tab);
  char k[80];
  uint64_t sum = 0, s = 99 + (uint64_t)a->id;
  for (long i = 0; i < a->n; i++) {
    if (cnt >= cap) {
      size_t nc = cap * 2;
      node **nt = calloc(nc, sizeof *nt);
      if (!nt) WL_FAIL("hashtab: calloc");
      for (size_t b = 0; b < cap; b++)
        for (node *x = tab[b], *nx; x; x = nx) {
          nx = x->next;
          size_t h = hkey(x->key, x->len) & (nc - 1);
          x->next = nt[h]; nt[h] = x;
        }
      free(tab); tab = nt; cap = nc;
    }
    size_t len = mkkey(k, i);
    node *x = malloc(sizeof *x + len);
    if (!x) WL_FAIL("hashtab: malloc");
    memcpy(x->key, k, len); x->len = len; x->v = (uint64_t)i;
    size_t h = hkey(k, len) & (cap - 1);
    x->next = tab[h]; tab[h] = x; cnt++;
    long j = (long)(wl_rand(&s) % (uint64_t)(i + 1));
    len = mkkey(k, j);
    node *y = tab[hkey(k, len) & (cap - 1)];
    while (y && !(y->len == len && !memcmp(y->key, k, len))) y = y->next;
    if (!y || y->v != (uint64_t)j) WL_FAIL("hashtab: key %ld not found", j);
    sum += y->v;
  }
  for (long i = 0; i < a->n; i++) {
    size_t len = mkkey(k, i);
    node *y = tab[hkey(k, len) & (cap - 1)];
    while (y && !(y->len == len && !memcmp(y->key, k, len))) y = y->next;
    if (!y || y->v != (uint64_t)i) WL_FAIL("hashtab: key %ld lost", i);
  }
  for (size_t b = 0; b < cap; b++)
    for (node *x = tab[b], *nx; x; x = nx) { nx = x->next; free(x); }
  free(tab);
  a->sum = sum;
  return NULL;
}

int main(int argc, char **argv) {
  return wl_main_split("hashtab", argc, argv, 200, 1000, work);
}
