/* prodcons: producer/consumer across threads. THREADS/2 producers (at least
 * 1) share SCALE*1000 messages of 16..2048 bytes: allocate, fill and
 * push them on a queue (mutex + condition variable, in batches of 64); the
 * other threads (at least 1) pop them, check and free them. The queue
 * holds at most 64 batches: a producer waits when it is full, so the
 * figures measure the allocator and not how long the queue grows. */
#include "wl.h"

typedef struct msg { struct msg *next; uint32_t len; uint32_t seq; unsigned char data[]; } msg;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static msg *head;
static int producers_left, batches;
static pthread_cond_t room = PTHREAD_COND_INITIALIZER;
typedef struct { int id; int producer; long n; uint64_t sum; long got; } arg_t;

static void push(msg *first, msg *last) {
  pthread_mutex_lock(&mu);
  while (batches >= 64) pthread_cond_wait(&room, &mu);
  batches++;
  last->next = head; head = first;
  pthread_cond_signal(&cv);
  pthread_mutex_unlock(&mu);
}

static void *work(void *p) {
  arg_t *a = p;
  if (a->producer) {
    uint64_t s = 5 + (uint64_t)a->id;
    msg *first = NULL, *last = NULL; int k = 0;
    for (long i = 0; i < a->n; i++) {
      uint32_t len = 16 + (uint32_t)(wl_rand(&s) % 2033);
      msg *m = malloc(sizeof *m + len);
      if (!m) WL_FAIL("prodcons: malloc");
      m->len = len; m->seq = (uint32_t)i;
      memset(m->data, (int)(len & 0xff), len);
      a->sum += len;
      m->next = first; first = m; if (!last) last = m;
      if (++k == 64) { push(first, last); first = last = NULL; k = 0; }
    }
    if (first) push(first, last);
    pthread_mutex_lock(&mu);
    producers_left--;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
  } else {
    for (;;) {
      pthread_mutex_lock(&mu);
      while (!head && producers_left) pthread_cond_wait(&cv, &mu);
      msg *m = head; head = NULL; batches = 0;
      pthread_cond_broadcast(&room);
      pthread_mutex_unlock(&mu);
      if (!m) break;
      while (m) {
        msg *nx = m->next;
        if (m->data[0] != (m->len & 0xff) || m->data[m->len - 1] != (m->len & 0xff))
          WL_FAIL("prodcons: message corrupted");
        a->sum += m->len; a->got++;
        free(m); m = nx;
      }
    }
  }
  return NULL;
}

int main(int argc, char **argv) {
  int t; long scale;
  wl_args(argc, argv, &t, &scale, 500);
  int np = t / 2 > 0 ? t / 2 : 1, nc = t - np > 0 ? t - np : 1;
  arg_t *a = calloc((size_t)(np + nc), sizeof *a);
  producers_left = np;
  for (int i = 0; i < np + nc; i++) {
    a[i].id = i; a[i].producer = i < np; a[i].n = scale * 1000 / np;
  }
  wl_run_threads(np + nc, work, a, sizeof *a);
  uint64_t ps = 0, cs = 0; long got = 0;
  for (int i = 0; i < np + nc; i++) {
    if (a[i].producer) ps += a[i].sum; else { cs += a[i].sum; got += a[i].got; }
  }
  if (ps != cs || got != a[0].n * np) WL_FAIL("prodcons: lost messages");
  printf("OK prodcons threads=%d scale=%ld checksum=%016llx\n", t, scale,
         (unsigned long long)wl_mix(ps, (uint64_t)got));
  free(a);
  return 0;
}
