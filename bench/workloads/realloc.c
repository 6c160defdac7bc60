/* realloc: growth of strings and vectors. Each thread, SCALE times, grows
 * 16 strings by appending 1..64 characters with realloc to exact size, and
 * 16 vectors of ints one element at a time (realloc by +1), up to 4 KiB and
 * 16 Ki elements, then checks and frees them. */
#include "wl.h"

typedef wl_arg arg_t;

static void *work(void *p) {
  arg_t *a = p;
  uint64_t s = 3 + (uint64_t)a->id, sum = 0;
  for (long r = 0; r < a->n; r++) {
    char *str[16] = {0}; size_t len[16] = {0};
    int *vec[16] = {0}; size_t vn[16] = {0};
    for (int step = 0; step < 200; step++) {
      for (int i = 0; i < 16; i++) {
        size_t add = 1 + wl_rand(&s) % 64;
        if (len[i] + add < 4096) {
          char *ns = realloc(str[i], len[i] + add + 1);
          if (!ns) WL_FAIL("realloc: string");
          for (size_t k = 0; k < add; k++) ns[len[i] + k] = (char)('a' + (len[i] + k) % 26);
          len[i] += add; ns[len[i]] = 0; str[i] = ns;
        }
        for (int k = 0; k < 8; k++) {
          int *nv = realloc(vec[i], (vn[i] + 1) * sizeof *nv);
          if (!nv) WL_FAIL("realloc: vector");
          nv[vn[i]] = (int)vn[i]; vn[i]++; vec[i] = nv;
        }
      }
    }
    for (int i = 0; i < 16; i++) {
      if (strlen(str[i]) != len[i]) WL_FAIL("realloc: string length");
      for (size_t k = 0; k < len[i]; k++)
        if (str[i][k] != (char)('a' + k % 26)) WL_FAIL("realloc: string content");
      for (size_t k = 0; k < vn[i]; k++)
        if (vec[i][k] != (int)k) WL_FAIL("realloc: vector content");
      sum += len[i] + vn[i];
      free(str[i]); free(vec[i]);
    }
  }
  a->sum = sum;
  return NULL;
}

int main(int argc, char **argv) {
  return wl_main_split("realloc", argc, argv, 200, 1, work);
}
