// page.c: the page allocator of a pool, and the walks over its descriptors.
//
// The data area is an array of 64 KiB pages, each described by a pdesc at
// the same index. Pages below the pool's top are tiled by spans: a slab, a
// large block, or a free span; a span's first descriptor says which and how
// long it is. Free spans sit in size bins (exact for 1..16 pages, then one
// per power of two) and are merged with free neighbours on every free, so
// no two free spans touch. Everything here runs under the pool's lock, but
// the checks of a lazily attached file (below, "Lazy attach"), which take a
// lock of their own, and page_walk (see api.c).
//
// Invariants that page_check verifies:
// - heads tile [0, top): each head's npages >= 1 and ends at or before top;
// - slab and large tails say PD_TAIL with the distance to their head;
// - a free span of 2+ pages ends with PD_FREE_LAST pointing at its head;
// - every free span is in the bin of its size, every bin holds only those;
// - a slab's free lists hold distinct block starts of blocks handed out
//   before (index < inited); used + free-list blocks = inited, and the
//   thread-free list holds at most used blocks (they count as used until
//   the owner collects them);
// - a slab is on its class's avail list iff PDF_LISTED, and then detached.
#include <errno.h>
#include <string.h>

#include "fmt.h"
#include "lock.h"
#include "page.h"
#include "log.h"
#include "os.h"
#include "vmmap.h"

// Free spans at least this long (every one: a slab's page too), and as
// many unused pages above the top, give their pages back to the kernel in
// anonymous pools once they have stayed free for page_purge_delay_ms (see
// "Purging" below).
#ifndef PURGE_MIN_PAGES
#define PURGE_MIN_PAGES 1u
#endif
// MMPOOL_PURGE_LAZY=1 (a build flag, for the measurement in
// docs/performance.md, "Large blocks"): MADV_FREE instead of MADV_DONTNEED.
#ifndef MMPOOL_PURGE_LAZY
#define MMPOOL_PURGE_LAZY 0
#endif
#ifndef MMPOOL_PURGE_DELAY_MS
#define MMPOOL_PURGE_DELAY_MS 100
#endif
// Free pages kept at most, whatever their age: this many (1 GiB), or
// 1/2^PURGE_BUDGET_SHIFT of the pages in use if more. A bound for a program
// that frees much and then makes no call that would purge, not a tuning:
// tighter budgets (64 or 256 MiB, a fourth of the pages in use) cost the
// large workload 2 to 7 times its CPU time (docs/performance.md).
#ifndef PURGE_BUDGET_MIN
#define PURGE_BUDGET_MIN 16384u
#endif
#ifndef PURGE_BUDGET_SHIFT
#define PURGE_BUDGET_SHIFT 0
#endif
// Growth of the committed data: at least this much at a time (few VMAs).
#define GROW_MIN ((size_t)2 << 20)
#define META_GRANULE ((size_t)64 << 10)

#define D(p, i) (&(p)->desc[(i)])
#define ST(p) (&(p)->hdr->st)

static unsigned bin_of(uint32_t n) {
  if (n <= 16) return n - 1;
  unsigned b = 16 + (31u - (unsigned)__builtin_clz(n)) - 4;
  return b < POOL_NBINS ? b : POOL_NBINS - 1;
}

// ---------------------------------------------------------------------------
// Lazy attach: descriptors of an attached file checked on first use
//
// A clean file is attached without reading its descriptors. Per pool slot,
// process-local bitmaps (never in the pool: nothing a file says can mark
// one of its pages checked) say, per data page:
// - chk: the page's descriptor is trusted: it belongs to a span checked
//   sound (page_check's span rules; a span's every page points back to its
//   head, which also excludes overlaps), with the fields that the free fast
//   path follows made harmless where they were not (make_inert, detached
//   slabs), or it was written by this process, or it lies above the top and
//   was made inert;
// - sbad: the page is in a span found damaged: never used again (its blocks
//   leak), said once;
// - ok / bad: slab heads whose blocks (free lists, slack arrays) are checked
//   sound or made here / found damaged (page_slab_sound).
// Pages [0, prefix) are all chk: fast_len, the free fast path's bound, is
// prefix pages (at most data_len), and grows by a bounded step at each slow
// path (page_lazy_advance) until it meets data_len; a pointer past it takes
// the slow path, which checks the page it needs (page_verify).
//
// Every page is checked at most once, under the slot's lazy lock (nested
// inside the pool lock, or taken alone by heap_block). A page changes from
// unchecked to chk once; code that changes spans (pool lock) checks the
// pages it touches first, and marks chk what it writes whole.
//
// gen names the open of the slot they belong to (pool_table's gen, bumped
// at every open), so a later pool in the slot, which attached nothing
// lazily, finds none; the memory is released at the slot's next lazy
// attach.
static struct lazy {
  uint32_t gen;     // the open they belong to; 0: none
  uint32_t npages;  // pages covered: the pool's capacity
  uint32_t prefix;  // pages [0, prefix) are chk
  size_t words;     // of each bitmap
  uint64_t *ok;     // slab blocks checked sound, or made by this process
  uint64_t *bad;    // slab blocks found damaged: never adopted, freed into
  uint64_t *chk;    // descriptor checked (see above)
  uint64_t *sbad;   // span found damaged
  unsigned warned;  // damaged slabs and spans said
  int stuck;        // the prefix met a damaged span: it grows no more
  pthread_mutex_t lock;
} lazy[MMPOOL_MAX_POOLS + 1] = {
    [0 ... MMPOOL_MAX_POOLS] = {.lock = PTHREAD_MUTEX_INITIALIZER}};

// Said per pool; mmpool_check names every damaged slab.
#define LAZY_WARN_MAX 8u
// Descriptors checked per slow path by page_lazy_advance.
#define ADVANCE_PAGES 256u

static struct lazy *lazy_on(const struct mmpool *p) {
  struct lazy *z = &lazy[p->id];
  return z->chk && z->gen == p->gen ? z : NULL;
}

static struct lazy *lazy_of(const struct mmpool *p, uint32_t idx) {
  struct lazy *z = lazy_on(p);
  return z && idx < z->npages ? z : NULL;
}

static int bit_get(const uint64_t *bm, uint32_t i) {
  return __atomic_load_n(&bm[i / 64], __ATOMIC_ACQUIRE) >> (i % 64) & 1;
}

// pre: the lazy lock; release: the descriptor's writes before the bit.
static void bit_set(uint64_t *bm, uint32_t i) {
  __atomic_fetch_or(&bm[i / 64], (uint64_t)1 << (i % 64), __ATOMIC_RELEASE);
}

static void lazy_mark_ok(struct mmpool *p, uint32_t idx) {
  struct lazy *z = lazy_of(p, idx);
  if (!z) return;
  z->ok[idx / 64] |= (uint64_t)1 << (idx % 64);
  z->bad[idx / 64] &= ~((uint64_t)1 << (idx % 64));
}

// Pages [idx, idx+n) written whole by this process (pool lock).
static void lazy_mark_chk(struct mmpool *p, uint32_t idx, uint32_t n) {
  struct lazy *z = lazy_of(p, idx);
  if (!z) return;
  if (n > z->npages - idx) n = z->npages - idx;
  for (uint32_t i = idx; i < idx + n; i++)
    if (!bit_get(z->chk, i)) bit_set(z->chk, i);
}

// what: "slab", "span", or "list" (a list of the pool's header, cut short).
static void lazy_warn(struct mmpool *p, struct lazy *z, const char *what,
                      const char *why) {
  int list = strcmp(what, "list") == 0;
  if (z->warned < LAZY_WARN_MAX)
    log_print(LOG_WARN, "pool '%s': %s: damaged %s %s: %s", p->name, p->path,
              what, list ? "cut short (the spans or slabs after the cut are "
                           "leaked)"
                         : "left unused (its blocks are leaked)",
              why);
  else if (z->warned == LAZY_WARN_MAX)
    log_print(LOG_WARN, "pool '%s': %s: more damaged slabs or spans left "
              "unused (mmpool_check names them)", p->name, p->path);
  z->warned++;
}

// The checks (below, with page_check's): verify is page_verify with the
// lazy lock held; verify_range checks pages [idx, idx+n) before code that
// holds the pool lock writes over them.
enum { V_NOSPAN = 1 };
// verify's modes: V_QUIET, damage is neither marked nor said
// (page_lazy_advance: the program's own first touch of the span says it);
// V_RO, no descriptor is written and nothing is marked checked (a frozen
// pool: its file is not this process's to change).
enum { V_QUIET = 1, V_RO = 2 };
static int verify(struct mmpool *p, struct lazy *z, uint32_t i, int mode);
static void verify_range(struct mmpool *p, uint32_t idx, uint32_t n);
static int bin_member(struct mmpool *p, unsigned b, uint32_t j);
static int avail_member(struct mmpool *p, unsigned c, uint32_t j);
static void list_unlink(struct mmpool *p, uint32_t *head, unsigned key,
                        uint32_t idx, const char *list,
                        int (*member)(struct mmpool *, unsigned, uint32_t));
static void list_push(struct mmpool *p, uint32_t *head, unsigned key,
                      uint32_t idx, const char *list,
                      int (*member)(struct mmpool *, unsigned, uint32_t));
static void lazy_warn_p(struct mmpool *p, const char *what, const char *why);
static void lazy_warn_at(struct mmpool *p, uint32_t j, const char *what,
                         const char *why);

// ---------------------------------------------------------------------------
// Lists through descriptors: heads and links hold page index + 1.

void page_list_push(struct mmpool *p, uint32_t *head, uint32_t idx) {
  struct pdesc *d = D(p, idx);
  d->prev = 0;
  d->next = *head;
  if (*head) D(p, *head - 1)->prev = idx + 1;
  *head = idx + 1;
}

void page_list_remove(struct mmpool *p, uint32_t *head, uint32_t idx) {
  struct pdesc *d = D(p, idx);
  if (d->prev) D(p, d->prev - 1)->next = d->next;
  else *head = d->next;
  if (d->next) D(p, d->next - 1)->prev = d->prev;
  d->next = d->prev = 0;
}

// The pool's lists (bins, avail) go through descriptors a file may have
// damaged: every link is checked before it is followed or written
// (list_unlink, list_push); the threads' own lists hold only slabs of this
// process.
void page_avail_push(struct mmpool *p, struct pdesc *d) {
  list_push(p, &ST(p)->avail[d->cls], d->cls, page_index(p, d), "avail",
            avail_member);
  d->flags |= PDF_LISTED;
}

void page_avail_remove(struct mmpool *p, struct pdesc *d) {
  list_unlink(p, &ST(p)->avail[d->cls], d->cls, page_index(p, d), "avail",
              avail_member);
  d->flags &= (uint8_t)~PDF_LISTED;
}

// ---------------------------------------------------------------------------
// Commit

// Extends the pool's reservation to cover `end` bytes from its base
// (vmmap_grow_pool); "full" naming what is in the way when it cannot.
static int reserve_to(struct mmpool *p, uint64_t end) {
  size_t had = p->reserved, got = had;
  if (end <= had) return 0;
  char why[384];
  int r = vmmap_grow_pool(p->base, end, &got, why, sizeof why);
  if (got > had) {
    char label[64];
    fmt_format(label, sizeof label, "mmpool:%s", p->name);
    os_name_range(p->base + had, got - had, label);
    if (p->thp) vmmap_advise_huge(p->base + had, got - had);
    __atomic_store_n(&p->reserved, got, __ATOMIC_RELEASE);
  }
  if (r) return log_fail(-r, "pool '%s' is full: %s", p->name, why);
  return 0;
}

// Reserves what page_grow(p, top) is about to commit: its growth step
// (same arithmetic), or at least the pages asked for. When only the pages
// asked for fit, *full keeps the message of the refusal, for grow().
static int reserve_for(struct mmpool *p, uint64_t top, char *full,
                       size_t full_len) {
  uint64_t data_off = p->hdr->data_off;
  size_t need = (size_t)top << PAGE_SHIFT, have = p->data_len;
  if (need <= have) return 0;
  size_t step = have / 8 > GROW_MIN ? have / 8 : GROW_MIN;
  size_t limit = (size_t)p->hdr->npages << PAGE_SHIFT;
  size_t want = need > have + step ? need : have + step;
  want = (want + PAGE_BYTES - 1) & ~(PAGE_BYTES - 1);
  if (want > limit) want = limit;
  if (reserve_to(p, data_off + want) == 0) return 0;
  fmt_format(full, full_len, "%s", log_last_error());
  return reserve_to(p, data_off + need);
}

// page_grow(p, top), with the reservation extended first: when the pool's
// range cannot grow, the message says why (the mapping in the way, the
// address-space limit), not only that the commit failed.
static int grow(struct mmpool *p, uint64_t top) {
  char full[400];
  full[0] = 0;
  int r = reserve_for(p, top, full, sizeof full);
  if (r) return r;
  r = page_grow(p, top);
  if (r == -ENOMEM && full[0]) return log_fail(ENOMEM, "%s", full);
  return r;
}

static int map_more(struct mmpool *p, uintptr_t addr, uint64_t off,
                    size_t len) {
  int r0 = reserve_to(p, addr + len - p->base);
  if (r0) return r0;
  if (p->is_file && p->shared && !p->frozen) {
    // Blocks first: a write fault into a hole on a full disk is SIGBUS.
    int r = os_allocate(p->fd, off, len);
    if (r) return r;
    return vmmap_map_file(addr, len, p->fd, off, 1);
  }
  return vmmap_commit(addr, len);
}

// Commits descriptors and data up to want data bytes (want >= have).
static int grow_to(struct mmpool *p, size_t want, int *meta_failed) {
  struct pool_state *st = ST(p);
  uint64_t data_off = p->hdr->data_off, desc_off = p->hdr->desc_off;
  size_t have = p->data_len;
  *meta_failed = 0;
  // Descriptors first, for every committed data page (not only those below
  // top): any address in committed data must find a readable descriptor.
  size_t need_meta = (want >> PAGE_SHIFT) * sizeof(struct pdesc);
  if (need_meta > st->meta_committed) {
    size_t m = (need_meta + META_GRANULE - 1) & ~(META_GRANULE - 1);
    size_t room = data_off - desc_off;
    if (m > room) m = room;
    size_t old = st->meta_committed;
    int r = map_more(p, p->base + desc_off + old, desc_off + old, m - old);
    if (r) {
      *meta_failed = 1;
      return r;
    }
    st->meta_committed = m;
    p->meta_mapped = m;
  }
  if (want > have) {
    int r = map_more(p, p->data + have, data_off + have, want - have);
    if (r) return r;
    st->length = data_off + want;
    __atomic_store_n(&p->data_len, want, __ATOMIC_RELEASE);
    page_fast_sync(p);
  }
  return 0;
}

// Whether a failed commit may work with less: no room or no memory.
static int grow_retry_err(int r) {
  return r == -ENOSPC || r == -EDQUOT || r == -ENOMEM || r == -EFBIG;
}

int page_grow(struct mmpool *p, uint64_t top) {
  size_t need = (size_t)top << PAGE_SHIFT, have = p->data_len, want = have;
  if (need > have) {
    size_t step = have / 8 > GROW_MIN ? have / 8 : GROW_MIN;
    size_t limit = (size_t)p->hdr->npages << PAGE_SHIFT;
    want = need > have + step ? need : have + step;
    want = (want + PAGE_BYTES - 1) & ~(PAGE_BYTES - 1);
    if (want > limit) want = limit;
  }
  int meta_failed;
  int r = grow_to(p, want, &meta_failed);
  // The step is a guess: when it does not fit, the pages actually needed
  // may (a file system almost full, a memory limit almost reached).
  if (r && grow_retry_err(r) && need > have && want > need)
    r = grow_to(p, need, &meta_failed);
  if (!r) return 0;
  char eb[64];
  if (meta_failed)
    return log_fail(-r, "pool '%s': cannot commit page descriptors (%s)",
                    p->name, os_strerror(-r, eb, sizeof eb));
  if (p->is_file && (r == -ENOSPC || r == -EDQUOT || r == -EFBIG))
    return log_fail(-r, "pool '%s': no space for %s to grow to %zu bytes "
                    "(%s)", p->name, p->path, need,
                    os_strerror(-r, eb, sizeof eb));
  return log_fail(-r, "pool '%s': cannot commit %zu bytes (%s)", p->name,
                  need - have, os_strerror(-r, eb, sizeof eb));
}

// ---------------------------------------------------------------------------
// Purging: when free pages go back to the kernel
//
// A freed span keeps its pages (dirty) and is reused as it is, from its
// size bin, before the top grows: a malloc/free loop of large blocks makes
// no system call and takes no page fault. Pages go back (vmmap_purge) once
// they have stayed free for page_purge_delay_ms, when a later call of
// page_span_alloc or page_span_free finds them due (purge_tick): a
// purge delay as mimalloc's, with no thread of ours. All go back at once
// when the pages kept pass the budget (PURGE_BUDGET_*), and on page_trim
// (malloc_trim); closing an anonymous pool unmaps it all. File pools never
// purge (docs/performance.md, "Large blocks", says why).
//
// Every free span counts, a slab's single page as a large block's 1,024
// (PURGE_MIN_PAGES 1; it was 16): a slab left empty, whose class is not
// used again, otherwise held its touched pages for good.
//
// In an anonymous pool, a free span of PURGE_MIN_PAGES or more keeps in
// its head's req (which no free span uses otherwise) the os_clock_ms of
// its last free or merge; the pages between the top and hiwater have one
// stamp, kept here. Nothing of this reaches a file.

uint32_t page_purge_delay_ms = MMPOOL_PURGE_DELAY_MS;

// req of a span MADV_FREE gave back already (MMPOOL_PURGE_LAZY): its pages
// are still dirty, but not due again until it is freed or merged anew.
#define STAMP_PURGED UINT64_MAX

static struct decay {
  uint32_t gen;      // the open it belongs to (pool_table's gen)
  int tail_purged;   // MMPOOL_PURGE_LAZY: [top, hiwater) given back
  uint64_t oldest;   // the oldest stamp waiting (ms); 0: nothing waits
  uint64_t tail;     // when the top last came down (ms)
  uint64_t dirty;    // pages in dirty free spans, not given back
} decay[MMPOOL_MAX_POOLS + 1];

static int anon_memory(struct mmpool *p) { return !p->is_file; }

static struct decay *decay_of(struct mmpool *p) {
  struct decay *z = &decay[p->id];
  if (z->gen != p->gen) memset(z, 0, sizeof *z), z->gen = p->gen;
  return z;
}

// Pages freed or merged at t (> 0): due at t + the delay.
static void purge_later(struct mmpool *p, uint64_t t) {
  struct decay *z = decay_of(p);
  if (z->oldest == 0 || t < z->oldest) z->oldest = t;
}

// Whether free span d counts in decay.dirty.
static int counted(struct mmpool *p, const struct pdesc *d) {
  return anon_memory(p) && (d->flags & PDF_DIRTY) &&
         !(MMPOOL_PURGE_LAZY && d->npages >= PURGE_MIN_PAGES &&
           d->req == STAMP_PURGED);
}

// Free pages of an anonymous pool that are not given back: dirty spans,
// and the pages between the top and hiwater.
static uint64_t dirty_pages(struct mmpool *p) {
  struct pool_state *st = ST(p);
  struct decay *z = decay_of(p);
  uint64_t tail = st->hiwater > st->top ? st->hiwater - st->top : 0;
  if (MMPOOL_PURGE_LAZY && z->tail_purged) tail = 0;
  return z->dirty + tail;
}

// Takes free span idx out of its bin.
static void bin_take(struct mmpool *p, uint32_t idx) {
  struct pdesc *d = D(p, idx);
  if (counted(p, d)) decay_of(p)->dirty -= d->npages;
  // The neighbours' links are checked (lazy attach): a damaged one is cut.
  unsigned b = bin_of(d->npages);
  list_unlink(p, &ST(p)->bins[b], b, idx, "bins", bin_member);
}

static void stamp(struct mmpool *p, uint32_t idx, uint64_t t) {
  struct pdesc *d = D(p, idx);
  if (!anon_memory(p) || d->npages < PURGE_MIN_PAGES) return;
  int was = counted(p, d);
  d->req = t;
  decay_of(p)->dirty += (uint64_t)(counted(p, d) - was) * d->npages;
}

static int give_back(struct mmpool *p, uint32_t idx, uint64_t n) {
  uintptr_t a = page_addr(p, idx);
  size_t len = (size_t)n << PAGE_SHIFT;
  return MMPOOL_PURGE_LAZY ? vmmap_purge_lazy(a, len) : vmmap_purge(a, len);
}

// Gives back the dirty free spans of min pages or more, and the pages
// above the top, that are due at now (all: every one); the oldest stamp
// of the rest is kept for the next look. The number of pages given back.
// A look that finds the oldest due also takes those free for half the
// delay: spans freed one after another (slabs left empty) then go back a
// batch at a time, in at most two looks per delay, not one look over
// every bin per span.
static uint64_t purge(struct mmpool *p, uint64_t now, uint32_t min,
                      int all) {
  struct pool_state *st = ST(p);
  struct decay *z = decay_of(p);
  uint64_t delay = page_purge_delay_ms - page_purge_delay_ms / 2;
  uint64_t next = 0, done = 0;
  for (unsigned b = bin_of(min); b < POOL_NBINS; b++) {
    for (uint32_t l = st->bins[b], prev = 0; l;
         prev = l, l = D(p, l - 1)->next) {
      uint32_t idx = l - 1;
      // Followed as page_span_alloc does: a link that lies ends the walk
      // (page_span_alloc cuts it, with its line, when it gets there).
      if (!bin_member(p, b, idx) || D(p, idx)->prev != prev) break;
      struct pdesc *d = D(p, idx);
      if (!(d->flags & PDF_DIRTY) || d->npages < min) continue;
      uint64_t t = d->npages >= PURGE_MIN_PAGES ? d->req : 0;
      if (t == STAMP_PURGED) continue;
      if (!all && t <= now && now - t < delay) {
        if (next == 0 || t < next) next = t;
        continue;
      }
      if (give_back(p, idx, d->npages)) continue;
      done += d->npages;
      if (MMPOOL_PURGE_LAZY) {
        stamp(p, idx, STAMP_PURGED);
      } else {
        if (counted(p, d)) z->dirty -= d->npages;
        d->flags &= (uint8_t)~PDF_DIRTY;
      }
    }
  }
  uint32_t tail = st->hiwater > st->top ? st->hiwater - st->top : 0;
  if (tail >= min && !(MMPOOL_PURGE_LAZY && z->tail_purged)) {
    if (!all && z->tail <= now && now - z->tail < delay) {
      if (next == 0 || z->tail < next) next = z->tail;
    } else if (give_back(p, st->top, tail) == 0) {
      done += tail;
      // MADV_FREE leaves the bytes: the pages stay below hiwater (dirty).
      if (MMPOOL_PURGE_LAZY) z->tail_purged = 1;
      else st->hiwater = st->top;
    }
  }
  z->oldest = next;
  return done;
}

// Called by page_span_alloc and page_span_free: one load while nothing is
// due, one read of the clock (no system call) while something waits, none
// when the caller read it (now, else 0).
static void purge_tick(struct mmpool *p, uint64_t now) {
  struct decay *z = &decay[p->id];
  if (z->gen != p->gen || z->oldest == 0) return;
  if (!now) now = os_clock_ms();
  if (now - z->oldest >= page_purge_delay_ms || now < z->oldest)
    purge(p, now, PURGE_MIN_PAGES, 0);
}

uint64_t page_kept(struct mmpool *p) {
  return anon_memory(p) ? dirty_pages(p) : 0;
}

uint64_t page_trim(struct mmpool *p) {
  if (!anon_memory(p)) return 0;
  return purge(p, os_clock_ms(), 1, 1);
}

// ---------------------------------------------------------------------------
// Spans

static void span_insert(struct mmpool *p, uint32_t idx, uint32_t n,
                        int dirty) {
  struct pdesc *h = D(p, idx);
  memset(h, 0, sizeof *h);
  h->kind = PD_FREE;
  h->flags = dirty ? PDF_DIRTY : 0;
  h->npages = n;
  h->owner = OWNER_NONE;
  if (counted(p, h)) decay_of(p)->dirty += n;
  if (n > 1) {
    struct pdesc *l = D(p, idx + n - 1);
    l->kind = PD_FREE_LAST;
    l->head_delta = n - 1;
    l->owner = OWNER_NONE;
  }
  // Its middle pages were checked before (verify_range, or a checked span).
  lazy_mark_chk(p, idx, 1);
  if (n > 1) lazy_mark_chk(p, idx + n - 1, 1);
  list_push(p, &ST(p)->bins[bin_of(n)], bin_of(n), idx, "bins", bin_member);
}

static void pages_taken(struct mmpool *p, uint32_t n) {
  p->pages_used += n;
  if (p->pages_peak < p->pages_used) p->pages_peak = p->pages_used;
}

// Pages to skip from idx so that its address is aligned to align pages.

static uint32_t align_pad(struct mmpool *p, uint32_t idx, uint32_t align) {
  uint64_t page = (p->data >> PAGE_SHIFT) + idx;
  return (uint32_t)((align - (page & (align - 1))) & (align - 1));
}

int64_t page_span_alloc(struct mmpool *p, uint32_t n, uint32_t align,
                        int *dirty) {
  struct pool_state *st = ST(p);
  // An alignment above the base's survives a relocation only by a multiple
  // of it: recorded (even if this allocation fails: it is only a bound).
  uint64_t abytes = (uint64_t)align << PAGE_SHIFT;
  if (abytes > POOL_BASE_ALIGN && abytes > st->align_max)
    st->align_max = abytes;
  purge_tick(p, 0);
  for (unsigned b = bin_of(n); b < POOL_NBINS; b++) {
    for (uint32_t l = st->bins[b], prev = 0; l;
         prev = l, l = D(p, l - 1)->next) {
      uint32_t idx = l - 1;
      if (!bin_member(p, b, idx) || D(p, idx)->prev != prev) {
        // A damaged link: the rest of the list is dropped (its spans leak).
        if (prev) D(p, prev - 1)->next = 0;
        else st->bins[b] = 0;
        char why[120], after[40] = "";
        if (prev) fmt_format(after, sizeof after, " (after page %u)", prev - 1);
        fmt_format(why, sizeof why, "bins[%u] names page %u, not a free "
                   "span of its bin%s", b, idx, after);
        lazy_warn_at(p, idx, "list", why);
        break;
      }
      struct pdesc *d = D(p, idx);
      uint32_t m = d->npages, pad = align_pad(p, idx, align);
      if (m < n || m - n < pad) continue;
      int dty = d->flags & PDF_DIRTY;
      uint64_t t = d->req;  // what is left was freed no later
      bin_take(p, idx);
      if (pad) {
        span_insert(p, idx, pad, dty);
        stamp(p, idx, t);
      }
      if (m - pad - n) {
        span_insert(p, idx + pad + n, m - pad - n, dty);
        stamp(p, idx + pad + n, t);
      }
      *dirty = dty;
      pages_taken(p, n);
      return idx + pad;
    }
  }
  uint32_t pad = align_pad(p, st->top, align);
  if ((uint64_t)st->top + pad + n > p->hdr->npages)
    return log_fail(ENOMEM, "pool '%s' is full (capacity %llu bytes)",
                    p->name, (unsigned long long)p->capacity);
  int r = grow(p, (uint64_t)st->top + pad + n);
  if (r) return r;
  uint32_t idx = st->top + pad;
  // Checked (made inert) before the top passes them: the pad's middle
  // pages are never written, and the span's are written by the caller
  // after this returns (page_set_span), when the top is above them.
  verify_range(p, st->top, pad + n);
  if (pad) {
    st->top = idx;  // so that span_insert's neighbour sees a valid top
    span_insert(p, idx - pad, pad, idx - pad < st->hiwater);
  }
  *dirty = idx < st->hiwater;
  st->top = idx + n;
  if (st->hiwater < st->top) st->hiwater = st->top;
  pages_taken(p, n);
  return idx;
}

void page_set_span(struct mmpool *p, uint32_t idx, uint32_t n, uint8_t kind) {
  struct pdesc *h = D(p, idx);
  if (kind == PD_SLAB) lazy_mark_ok(p, idx);  // made here: nothing to check
  lazy_mark_chk(p, idx, n);
  h->kind = kind;
  h->npages = n;
  h->head_delta = 0;
  h->next = h->prev = 0;
  h->flags = 0;
  h->owner = OWNER_NONE;
  for (uint32_t i = 1; i < n; i++) {
    struct pdesc *t = D(p, idx + i);
    t->kind = PD_TAIL;
    t->head_delta = i;
    t->owner = OWNER_NONE;  // as attach leaves it: no store there
  }
}

void page_span_free(struct mmpool *p, uint32_t idx, uint32_t n) {
  struct pool_state *st = ST(p);
  struct pdesc *h = D(p, idx);
  p->pages_used -= n;
  // A stale head must not look like a live slab to a later bogus free, nor
  // a stale tail lead one to a slab that reuses the head's page later: the
  // free fast path trusts a page whose owner is the caller's id as a slab
  // head, and resolves any other page through head_delta and trusts the
  // owner it finds there (heap.h).
  h->kind = PD_FREE;
  h->owner = OWNER_NONE;
  for (uint32_t i = 1; i < n; i++) {
    struct pdesc *t = D(p, idx + i);
    t->kind = PD_FREE_MID;
    t->head_delta = 0;
    t->owner = OWNER_NONE;
  }
  uint32_t start = idx, end = idx + n;
  // The neighbours are checked before they are merged (lazy attach): a
  // damaged one stays apart.
  if (idx > 0 && page_verify(p, idx - 1) == 0) {
    struct pdesc *pd = D(p, idx - 1);
    uint32_t ps = pd->kind == PD_FREE       ? idx - 1
                  : pd->kind == PD_FREE_LAST ? idx - 1 - pd->head_delta
                                             : idx;
    if (ps < idx && D(p, ps)->kind == PD_FREE &&
        ps + D(p, ps)->npages == idx) {
      bin_take(p, ps);
      start = ps;
    }
  }
  if (end < st->top && page_verify(p, end) == 0 &&
      D(p, end)->kind == PD_FREE) {
    uint32_t m = D(p, end)->npages;
    bin_take(p, end);
    D(p, end)->kind = PD_FREE_MID;  // now the middle of a span
    end += m;
  }
  // Kept, dirty, for reuse: given back when it has stayed free for the
  // purge delay ("Purging" above). A merge restarts its neighbours' wait.
  uint64_t now = 0;
  if (end == st->top) {
    st->top = start;
    if (anon_memory(p) && st->hiwater - start >= PURGE_MIN_PAGES) {
      struct decay *z = decay_of(p);
      z->tail = now = os_clock_ms();
      z->tail_purged = 0;
      purge_later(p, now);
    }
  } else {
    span_insert(p, start, end - start, 1);
    if (anon_memory(p) && end - start >= PURGE_MIN_PAGES) {
      now = os_clock_ms();
      stamp(p, start, now);
      purge_later(p, now);
    }
  }
  if (now) {  // pages kept that may be due one day: within the budget?
    uint64_t budget = p->pages_used >> PURGE_BUDGET_SHIFT;
    if (budget < PURGE_BUDGET_MIN) budget = PURGE_BUDGET_MIN;
    if (dirty_pages(p) > budget) {
      purge(p, now, PURGE_MIN_PAGES, 1);
      return;
    }
  }
  purge_tick(p, now);
}

int page_span_extend(struct mmpool *p, uint32_t idx, uint32_t n,
                     uint32_t extra) {
  struct pool_state *st = ST(p);
  uint32_t j = idx + n;
  if (j == st->top) {
    if ((uint64_t)j + extra > p->hdr->npages) return -ENOMEM;
    int r = grow(p, (uint64_t)j + extra);
    if (r) return r;
    verify_range(p, j, extra);
    st->top = j + extra;
    if (st->hiwater < st->top) st->hiwater = st->top;
    pages_taken(p, extra);
    return 0;
  }
  struct pdesc *d = D(p, j);
  if (j < st->top && page_verify(p, j) == 0 && d->kind == PD_FREE &&
      d->npages >= extra) {
    uint32_t m = d->npages;
    int dty = d->flags & PDF_DIRTY;
    uint64_t t = d->req;
    bin_take(p, j);
    if (m > extra) {
      span_insert(p, j + extra, m - extra, dty);
      stamp(p, j + extra, t);
    }
    pages_taken(p, extra);
    return 0;
  }
  return -ENOMEM;
}

// ---------------------------------------------------------------------------
// Attach

// A descriptor that no span starts at and that a free may still reach (a
// stray pointer into a free span, or into committed data above the top):
// it must not send heap_free's fast path anywhere. The fast path trusts an
// owner equal to the calling thread's id, on the page itself or else on the
// page head_delta leads to, so a harmless one says "no head" and "not a
// slab". Written only when it differs, so that a sound file's pages stay
// clean.
static void make_inert(struct pdesc *d, uint8_t kind) {
  if (d->kind == kind && d->head_delta == 0 && d->owner == OWNER_NONE)
    return;
  memset(d, 0, sizeof *d);
  d->kind = kind;
  d->owner = OWNER_NONE;
}

void page_detach_all(struct mmpool *p) {
  struct pool_state *st = ST(p);
  // What the file says is zero is not trusted (calloc skips its memset on
  // pages it believes clean): every committed page counts as dirty.
  st->hiwater = (uint32_t)((st->length - p->hdr->data_off) >> PAGE_SHIFT);
  p->pages_used = 0;
  // page_check(_desc) has passed: heads tile [0, top), tails point at
  // their head, the lists are sound. Every store below is made only when
  // it changes the field: a clean file's descriptors already say all this,
  // and its pages stay clean (a shared mapping writes back nothing).
  for (uint32_t i = 0; i < st->top; i += D(p, i)->npages) {
    struct pdesc *d = D(p, i);
    uint32_t n = d->npages;
    // Only slab heads carry thread ids: the free fast path takes a page
    // whose owner is the caller's id for a slab head (heap.h).
    for (uint32_t t = 1; t < n; t++) {
      struct pdesc *x = D(p, i + t);
      if (d->kind != PD_FREE) {
        if (x->owner != OWNER_NONE) x->owner = OWNER_NONE;
      } else if (t + 1 < n) {
        make_inert(x, PD_FREE_MID);  // stale kinds inside a free span
      } else if (x->owner != OWNER_NONE) {
        x->owner = OWNER_NONE;       // PD_FREE_LAST, checked to point back
      }
    }
    if (d->kind == PD_FREE) {
      if (!(d->flags & PDF_DIRTY)) d->flags |= PDF_DIRTY;
    } else {
      p->pages_used += n;
    }
    if (d->kind != PD_SLAB) continue;
    if (d->owner != OWNER_DETACHED) d->owner = OWNER_DETACHED;
    if (d->used & PDESC_USED_PIN) d->used &= ~PDESC_USED_PIN;
    if (!(d->thread_free & TF_DETACHED)) d->thread_free |= TF_DETACHED;
    // The avail lists checked sound: a slab stays on its list, or leaves
    // it, or joins it, by whether its descriptor says it has room (its
    // blocks are not read: see page_slab_sound).
    int room = d->free || TF_HEAD(d->thread_free) ||
               d->inited < d->nblocks;
    if (d->flags & PDF_LISTED) {
      if (!room) page_avail_remove(p, d);
    } else {
      if (d->next || d->prev) d->next = d->prev = 0;
      if (room) page_avail_push(p, d);
    }
  }
  // Above the top nothing is checked: every committed descriptor there
  // (a free of an address in committed data reaches it, and so does one
  // in data committed later, up to meta_committed) becomes inert. Never
  // written by a sound pool but for stale spans, so this stays cheap.
  uint64_t ndesc = st->meta_committed / sizeof(struct pdesc);
  if (ndesc > p->hdr->npages) ndesc = p->hdr->npages;
  for (uint64_t i = st->top; i < ndesc; i++) {
    struct pdesc *d = D(p, i);
    if (d->kind == PD_UNUSED && d->head_delta == 0 &&
        (d->owner == OWNER_NONE || d->owner == OWNER_DETACHED))
      continue;  // never used (zero) or already inert
    make_inert(d, PD_UNUSED);
  }
  p->pages_peak = p->pages_used;
}

int page_block_at(struct mmpool *p, uintptr_t a) {
  if (a < p->data || a - p->data >= p->data_len) return 0;
  uint32_t idx = (uint32_t)((a - p->data) >> PAGE_SHIFT);
  if (page_verify(p, idx) < 0) return 0;
  struct pdesc *d = D(p, idx);
  if (d->kind == PD_TAIL && d->head_delta <= idx) d -= d->head_delta;
  uint32_t head = page_index(p, d);
  uintptr_t off = a - page_addr(p, head);
  if (head >= ST(p)->top || off >= (uintptr_t)d->npages << PAGE_SHIFT)
    return 0;
  if (d->kind == PD_LARGE) return off < (d->req ? d->req : 1);
  return d->kind == PD_SLAB && off / d->bsize < d->inited;
}

// ---------------------------------------------------------------------------
// Walks: check, enumerate, statistics

#define BITMAP_WORDS ((4096 + 63) / 64)  // bits for the largest nblocks

#define CHECK(cond, ...)                                 \
  do {                                                   \
    if (!(cond)) {                                       \
      fmt_format(why, why_len, __VA_ARGS__);             \
      return -EUCLEAN;                                   \
    }                                                    \
  } while (0)

// ---------------------------------------------------------------------------
// Repair after a crash (attach with `recover`)
//
// A process killed between two stores of a multi-store update leaves the
// derived metadata torn: a slab's used count behind its lists, a free span
// whose last page does not point back, a bin missing a span. The facts that
// cannot tear are the heads of live spans (written before a block is handed
// out, and set to PD_FREE when freed), so the repair keeps every valid live
// head, treats every other page below top as free, and rebuilds the rest.

// Pages of the live slab or large block that d (page i) heads, or 0.
static uint32_t live_span(struct mmpool *p, struct pdesc *d, uint32_t i,
                          uint32_t top) {
  if (d->kind == PD_LARGE) {
    uint32_t n = d->npages;
    return n >= 1 && n <= top - i && d->req <= (uint64_t)n << PAGE_SHIFT ? n
                                                                          : 0;
  }
  if (d->kind != PD_SLAB || d->cls >= SC_COUNT) return 0;
  const struct sizeclass *sc = &sc_table[d->cls];
  uint64_t so = (uint64_t)(p->data - p->base) + ((uint64_t)i << PAGE_SHIFT);
  int ok = d->bsize == sc->bsize && d->nblocks == sc->nblocks &&
           d->npages == sc->npages && d->gshift == sc->gshift &&
           d->inited <= d->nblocks && sc->npages <= top - i &&
           d->slack_off == sc_slack_off(sc, so);
  return ok ? sc->npages : 0;
}

// Keeps the longest valid prefix of a slab's free list; returns its length
// and its last block (0 if empty). Blocks past inited were threaded by an
// interrupted extend: inited grows to cover them.
static uint32_t repair_list(struct mmpool *p, struct pdesc *d, uint32_t i,
                            uint64_t *head, uint64_t *bm, uint64_t *last) {
  uint64_t slab = (uint64_t)(p->data - p->base) + ((uint64_t)i << PAGE_SHIFT);
  uint64_t *link = head;
  uint32_t n = 0;
  *last = 0;
  while (*link) {
    uint64_t off = *link, b = (off - slab) / d->bsize;
    if (off < slab || (off - slab) % d->bsize || b >= d->nblocks ||
        (bm[b / 64] >> (b % 64) & 1)) {
      *link = 0;  // cut the list before the first bad link
      break;
    }
    bm[b / 64] |= (uint64_t)1 << (b % 64);
    if (b >= d->inited) d->inited = (uint32_t)b + 1;
    n++;
    *last = off;
    link = (uint64_t *)(p->base + off);
  }
  return n;
}

static void repair_slab(struct mmpool *p, struct pdesc *d, uint32_t i) {
  uint64_t bm[BITMAP_WORDS] = {0};
  uint64_t last_free, last_tf;
  uint64_t tf = TF_HEAD(d->thread_free);
  uint32_t n = repair_list(p, d, i, &d->free, bm, &last_free);
  uint32_t m = repair_list(p, d, i, &tf, bm, &last_tf);
  if (m) {  // the other threads' frees join the free list
    *(uint64_t *)(p->base + last_tf) = d->free;
    d->free = tf;
  }
  d->thread_free = 0;
  d->used = d->inited - n - m;
  d->flags &= (uint8_t)~PDF_LISTED;
  d->next = d->prev = 0;
}

// What a torn write can leave where no live span starts: stale kinds of
// freed or half-made spans. Anything else is damage, which repair refuses.
static int plausible_stale(const struct pdesc *d, uint32_t i) {
  switch (d->kind) {
  case PD_UNUSED:
  case PD_FREE:
  case PD_FREE_MID:
  case PD_SLAB:   // a slab or large block whose making was cut short
  case PD_LARGE:
    return 1;
  case PD_FREE_LAST:
  case PD_TAIL:
    return d->head_delta >= 1 && d->head_delta <= i;
  }
  return 0;
}

int page_repair(struct mmpool *p, char *why, size_t why_len) {
  struct pool_state *st = ST(p);
  uint32_t top = st->top, run = UINT32_MAX;  // run: first page of free run
  for (uint32_t i = 0; i < top; i++)  // refuse before changing anything
    CHECK(live_span(p, D(p, i), i, top) || plausible_stale(D(p, i), i),
          "page %u: descriptor of kind %u (head_delta %u) is damaged, not "
          "half-written", i, D(p, i)->kind, D(p, i)->head_delta);
  memset(st->bins, 0, sizeof st->bins);
  memset(st->avail, 0, sizeof st->avail);
  for (uint32_t i = 0; i < top;) {
    struct pdesc *d = D(p, i);
    uint32_t n = live_span(p, d, i, top);
    if (!n) {
      if (run == UINT32_MAX) run = i;
      i++;
      continue;
    }
    if (run != UINT32_MAX) span_insert(p, run, i - run, 1);
    run = UINT32_MAX;
    page_set_span(p, i, n, d->kind);  // rewrites the tails
    if (d->kind == PD_SLAB) repair_slab(p, d, i);
    i += n;
  }
  if (run != UINT32_MAX) st->top = run;  // a free run at the end: the top
  return 0;
}


// Marks the blocks of one free list in bm; counts them in *count.
static int mark_list(struct mmpool *p, struct pdesc *d, uint32_t idx,
                     uint64_t off, uint64_t *bm, uint32_t *count,
                     const char *which, char *why, size_t why_len) {
  uint64_t slab = (uint64_t)(p->data - p->base) + ((uint64_t)idx << PAGE_SHIFT);
  uint32_t guard = 0;
  while (off) {
    CHECK(off >= slab && (off - slab) % d->bsize == 0,
          "page %u: %s list holds 0x%llx, not a block of the slab", idx,
          which, (unsigned long long)off);
    uint64_t b = (off - slab) / d->bsize;
    CHECK(b < d->inited, "page %u: %s list holds block %llu, never handed "
          "out (inited %u)", idx, which, (unsigned long long)b, d->inited);
    CHECK(!(bm[b / 64] >> (b % 64) & 1), "page %u: block %llu is on the "
          "free lists twice (double free?)", idx, (unsigned long long)b);
    bm[b / 64] |= (uint64_t)1 << (b % 64);
    CHECK(++guard <= d->nblocks, "page %u: %s list loops", idx, which);
    off = *(uint64_t *)(p->base + off);
  }
  *count += guard;
  return 0;
}

// The fields of slab head d (at idx) that code follows without a further
// check: its class, the block geometry, inited, the slack array's place.
static int slab_fields(struct mmpool *p, struct pdesc *d, uint32_t idx,
                       char *why, size_t why_len) {
  CHECK(d->cls < SC_COUNT, "page %u: size class %u out of range", idx,
        d->cls);
  const struct sizeclass *sc = &sc_table[d->cls];
  CHECK(d->bsize == sc->bsize && d->nblocks == sc->nblocks &&
            d->npages == sc->npages && d->gshift == sc->gshift,
        "page %u: slab fields disagree with class %u", idx, d->cls);
  CHECK(d->inited <= d->nblocks, "page %u: inited %u out of range", idx,
        d->inited);
  uint64_t slab = (uint64_t)(p->data - p->base) + ((uint64_t)idx << PAGE_SHIFT);
  CHECK(d->slack_off == sc_slack_off(sc, slab),
        "page %u: slack array offset out of range", idx);
  return 0;
}

// Fills bm with the free blocks of slab d (at idx); checks its fields, its
// lists and the slack entries of its live blocks (in its data pages).
static int slab_scan(struct mmpool *p, struct pdesc *d, uint32_t idx,
                     uint64_t *bm, char *why, size_t why_len) {
  int r = slab_fields(p, d, idx, why, why_len);
  if (r) return r;
  uint64_t slab = (uint64_t)(p->data - p->base) + ((uint64_t)idx << PAGE_SHIFT);
  memset(bm, 0, BITMAP_WORDS * 8);
  uint32_t nfree = 0, nremote = 0;
  r = mark_list(p, d, idx, d->free, bm, &nfree, "free", why, why_len);
  if (r) return r;
  r = mark_list(p, d, idx, TF_HEAD(d->thread_free), bm, &nremote,
                "thread-free", why, why_len);
  if (r) return r;
  // collect trusts a count to take the list without walking it.
  CHECK(TF_COUNT(d->thread_free) == 0 ||
            TF_COUNT(d->thread_free) == nremote,
        "page %u: the thread-free list holds %u blocks, its count says %u",
        idx, nremote, TF_COUNT(d->thread_free));
  // Blocks on the thread-free list still count in used until collected.
  uint32_t used = pdesc_used(d);
  CHECK(used + nfree == d->inited && nremote <= used,
        "page %u: %u used + %u free blocks (%u freed by other threads), but "
        "%u handed out", idx, used, nfree, nremote, d->inited);
  // Every live block's slack: usable_size and realloc's copy trust it.
  for (uint32_t b = 0; b < d->inited; b++) {
    if (bm[b / 64] >> (b % 64) & 1) continue;
    uint64_t off = slab + (uint64_t)b * d->bsize;
    uint16_t s = *pdesc_slack(p->base, d, off);
    CHECK(s <= d->bsize, "page %u: block %u records a slack of %u bytes in a "
          "%u-byte block", idx, b, s, d->bsize);
  }
  return 0;
}

static size_t slack_of(struct mmpool *p, struct pdesc *d, uint64_t off) {
  return *pdesc_slack(p->base, d, off);
}

// page_check; with scan 0, the slabs' fields but not their lists and slack
// arrays.
static int check(struct mmpool *p, int scan, char *why, size_t why_len) {
  struct pool_state *st = ST(p);
  uint64_t bm[BITMAP_WORDS];
  uint32_t free_spans = 0, listed = 0;
  uint32_t prev_kind = PD_UNUSED;  // no span before the first
  // free() resolves any page through head_delta: it must stay in the array.
  // Attach (scan 0) skips this pass: heads and tails are checked exactly
  // below, and page_detach_all makes every other page below the top inert.
  for (uint32_t i = 0; scan && i < st->top; i++)
    CHECK(D(p, i)->head_delta <= i, "page %u: head_delta %u out of range", i,
          D(p, i)->head_delta);
  for (uint32_t i = 0; i < st->top;) {
    struct pdesc *d = D(p, i);
    CHECK(d->kind == PD_FREE || d->kind == PD_SLAB || d->kind == PD_LARGE,
          "page %u: kind %u where a span should start", i, d->kind);
    CHECK(d->npages >= 1 && d->npages <= st->top - i,
          "page %u: span of %u pages passes the top (%u)", i, d->npages,
          st->top);
    CHECK(d->head_delta == 0, "page %u: head with head_delta %u", i,
          d->head_delta);
    uint32_t n = d->npages;
    // Only slab heads may carry a thread id: heap_free's fast path pushes
    // onto any head whose owner is the caller's id.
    CHECK(d->kind == PD_SLAB || d->owner == OWNER_NONE,
          "page %u: owner %u on a head of kind %u (not a slab)", i, d->owner,
          d->kind);
    if (d->kind == PD_FREE) {
      CHECK(prev_kind != PD_FREE, "page %u: two free spans touch", i);
      CHECK((d->flags & ~PDF_DIRTY) == 0, "page %u: free span with flags "
            "0x%x", i, d->flags);
      CHECK(n == 1 || (D(p, i + n - 1)->kind == PD_FREE_LAST &&
                       D(p, i + n - 1)->head_delta == n - 1),
            "page %u: free span's last page does not point back", i);
      free_spans++;
    } else {
      for (uint32_t t = 1; t < n; t++)
        CHECK(D(p, i + t)->kind == PD_TAIL && D(p, i + t)->head_delta == t,
              "page %u: tail page %u of the span is wrong", i, i + t);
      if (d->kind == PD_SLAB) {
        int r = scan ? slab_scan(p, d, i, bm, why, why_len)
                     : slab_fields(p, d, i, why, why_len);
        if (r) return r;
        if (d->flags & PDF_LISTED) {
          CHECK(d->owner == OWNER_DETACHED, "page %u: listed but owned", i);
          listed++;
        }
      } else {
        // usable_size and realloc's copy trust req: it fits the pages. It
        // may be small (memalign), and need fewer pages than the block has
        // (a resize in place cut short by a crash, repaired).
        CHECK(d->req <= (uint64_t)n << PAGE_SHIFT,
              "page %u: large block of %llu bytes in %u pages", i,
              (unsigned long long)d->req, n);
        CHECK(d->cls == 0 && d->flags == 0 && d->next == 0 && d->prev == 0,
              "page %u: large block with class %u, flags 0x%x, links %u/%u", i,
              d->cls, d->flags, d->next, d->prev);
      }
    }
    prev_kind = d->kind;
    i += n;
  }
  // The lists: each member of the right kind and size, links consistent.
  uint32_t in_bins = 0, in_avail = 0;
  for (unsigned b = 0; b < POOL_NBINS; b++) {
    uint32_t prev = 0;
    for (uint32_t l = st->bins[b]; l; l = D(p, l - 1)->next) {
      CHECK(l <= st->top, "bins[%u]: page %u out of range", b, l - 1);
      struct pdesc *d = D(p, l - 1);
      CHECK(d->kind == PD_FREE && bin_of(d->npages) == b && d->prev == prev,
            "bins[%u]: page %u is not a free span of this bin", b, l - 1);
      CHECK(++in_bins <= free_spans, "bins: more entries than free spans");
      prev = l;
    }
  }
  CHECK(in_bins == free_spans, "bins hold %u spans, the pages show %u",
        in_bins, free_spans);
  for (unsigned c = 0; c < SC_COUNT; c++) {
    uint32_t prev = 0;
    for (uint32_t l = st->avail[c]; l; l = D(p, l - 1)->next) {
      CHECK(l <= st->top, "avail[%u]: page %u out of range", c, l - 1);
      struct pdesc *d = D(p, l - 1);
      CHECK(d->kind == PD_SLAB && d->cls == c && (d->flags & PDF_LISTED) &&
                d->prev == prev,
            "avail[%u]: page %u is not a listed slab of this class", c,
            l - 1);
      CHECK(++in_avail <= listed, "avail: more entries than listed slabs");
      prev = l;
    }
  }
  CHECK(in_avail == listed, "avail lists hold %u slabs, %u are marked",
        in_avail, listed);
  return 0;
}

int page_check(struct mmpool *p, char *why, size_t why_len) {
  return check(p, 1, why, why_len);
}

// ---------------------------------------------------------------------------
// Lazy attach: the checks (see "Lazy attach" above)

// Span head h (unchecked) as page_check checks it, and no page of it
// already another span's. *upto: the last page that the span's head and
// tails claim so far (the damaged span's pages, when it fails).
// pre: lazy lock.
static int span_sound(struct mmpool *p, struct lazy *z, uint32_t h,
                      uint32_t top, uint32_t *upto, char *why,
                      size_t why_len) {
  struct pdesc *d = D(p, h);
  *upto = h;
  CHECK(d->kind == PD_FREE || d->kind == PD_SLAB || d->kind == PD_LARGE,
        "page %u: kind %u where a span should start", h, d->kind);
  CHECK(d->npages >= 1 && d->npages <= top - h,
        "page %u: span of %u pages passes the top (%u)", h, d->npages, top);
  CHECK(d->head_delta == 0, "page %u: head with head_delta %u", h,
        d->head_delta);
  CHECK(d->kind == PD_SLAB || d->owner == OWNER_NONE,
        "page %u: owner %u on a head of kind %u (not a slab)", h, d->owner,
        d->kind);
  uint32_t n = d->npages;
  for (uint32_t t = 1; t < n; t++) {
    struct pdesc *x = D(p, h + t);
    *upto = h + t;
    // A page of a span checked before is not this one's: the two overlap.
    CHECK(!bit_get(z->chk, h + t), "page %u: span of %u pages overlaps "
          "page %u of another", h, n, h + t);
    if (d->kind != PD_FREE)
      CHECK(x->kind == PD_TAIL && x->head_delta == t,
            "page %u: tail page %u of the span is wrong", h, h + t);
    else if (t == n - 1)
      CHECK(x->kind == PD_FREE_LAST && x->head_delta == t,
            "page %u: free span's last page does not point back", h);
    // A free span's middle pages may say anything (stale kinds of freed
    // spans, as page_check allows): span_trust makes them inert, and a
    // span that one of them starts and that was checked first makes this
    // one overlap, above.
  }
  if (d->kind == PD_FREE) {
    CHECK((d->flags & ~PDF_DIRTY) == 0, "page %u: free span with flags "
          "0x%x", h, d->flags);
  } else if (d->kind == PD_SLAB) {
    return slab_fields(p, d, h, why, why_len);
  } else {
    CHECK(d->req <= (uint64_t)n << PAGE_SHIFT,
          "page %u: large block of %llu bytes in %u pages", h,
          (unsigned long long)d->req, n);
    CHECK(d->cls == 0 && d->flags == 0 && d->next == 0 && d->prev == 0,
          "page %u: large block with class %u, flags 0x%x, links %u/%u", h,
          d->cls, d->flags, d->next, d->prev);
  }
  return 0;
}

// A span checked sound becomes what attach used to make of every span
// (page_detach_all): no thread id where the fast path could meet it, a
// slab detached, a free span's middle inert. A field is written only when
// it changes: a clean file's descriptors already say all this. Then its
// pages are marked checked. pre: lazy lock.
static void span_trust(struct mmpool *p, struct lazy *z, uint32_t h) {
  struct pdesc *d = D(p, h);
  uint32_t n = d->npages;
  for (uint32_t t = 1; t < n; t++) {
    struct pdesc *x = D(p, h + t);
    if (d->kind == PD_FREE && t + 1 < n) make_inert(x, PD_FREE_MID);
    else if (x->owner != OWNER_NONE) x->owner = OWNER_NONE;
  }
  if (d->kind == PD_FREE) {
    // What the file says is zero is not trusted (calloc skips its memset
    // on pages it believes clean).
    if (!(d->flags & PDF_DIRTY)) d->flags |= PDF_DIRTY;
  } else if (d->kind == PD_SLAB) {
    if (d->owner != OWNER_DETACHED)
      __atomic_store_n(&d->owner, OWNER_DETACHED, __ATOMIC_RELAXED);
    if (d->used & PDESC_USED_PIN) d->used &= ~PDESC_USED_PIN;
    if (!(d->thread_free & TF_DETACHED)) d->thread_free |= TF_DETACHED;
    if (!(d->flags & PDF_LISTED) && (d->next || d->prev))
      d->next = d->prev = 0;
  }
  for (uint32_t t = 0; t < n; t++) bit_set(z->chk, h + t);
}

static int verify(struct mmpool *p, struct lazy *z, uint32_t i, int mode) {
  int quiet = mode & V_QUIET;
  if (bit_get(z->chk, i)) return 0;
  if (bit_get(z->sbad, i)) return -EUCLEAN;
  uint32_t top = __atomic_load_n(&ST(p)->top, __ATOMIC_RELAXED);
  struct pdesc *d = D(p, i);
  char why[200];
  if (i >= top) {
    // Above the top: only a stray free reads it; made inert.
    if (mode & V_RO) return 0;
    if (d->head_delta != 0 ||
        (d->owner != OWNER_NONE && d->owner != OWNER_DETACHED))
      make_inert(d, PD_UNUSED);
    bit_set(z->chk, i);
    return 0;
  }
  uint32_t h;
  if (d->kind == PD_FREE || d->kind == PD_SLAB || d->kind == PD_LARGE) {
    h = i;
  } else if ((d->kind == PD_TAIL || d->kind == PD_FREE_LAST) &&
             d->head_delta >= 1 && d->head_delta <= i) {
    h = i - d->head_delta;
  } else if (d->kind == PD_FREE_MID || d->kind == PD_UNUSED) {
    return V_NOSPAN;  // says it is inside a free span: nothing follows it
  } else {
    if (quiet) return -EUCLEAN;
    fmt_format(why, sizeof why, "page %u: kind %u (head_delta %u) names no "
               "span", i, d->kind, d->head_delta);
    goto bad;
  }
  if (bit_get(z->sbad, h)) {
    bit_set(z->sbad, i);  // its head was said
    return -EUCLEAN;
  }
  if (!bit_get(z->chk, h)) {
    uint32_t upto;
    if (span_sound(p, z, h, top, &upto, why, sizeof why)) {
      if (quiet) return -EUCLEAN;
      // Its pages up to the fault are left with it, said once.
      for (uint32_t t = h; t <= upto; t++)
        if (!bit_get(z->chk, t)) bit_set(z->sbad, t);
      goto bad;
    }
    if ((mode & V_RO) && i - h < D(p, h)->npages) return 0;
    if (!(mode & V_RO)) span_trust(p, z, h);
  }
  if (bit_get(z->chk, i)) return 0;
  if (quiet) return -EUCLEAN;
  fmt_format(why, sizeof why, "page %u: a tail of page %u, whose span of %u "
             "pages does not hold it", i, h, D(p, h)->npages);
  // The tails after it that point at the same head go with it, said once.
  for (uint32_t t = i + 1; t < top && !bit_get(z->chk, t) &&
                           D(p, t)->kind == d->kind &&
                           D(p, t)->head_delta == t - h;
       t++)
    bit_set(z->sbad, t);
bad:
  bit_set(z->sbad, i);
  lazy_warn(p, z, "span", why);
  return -EUCLEAN;
}

const char page_damaged_why[] = "in a damaged span of the pool file, left "
                                "unused";

int page_verify_lazy(struct mmpool *p, uint32_t idx) {
  struct lazy *z = lazy_of(p, idx);
  if (!z || bit_get(z->chk, idx)) return 0;
  engine_lock(&z->lock);
  int r = verify(p, z, idx, p->frozen ? V_RO : 0);
  engine_unlock(&z->lock);
  return r;
}

static void verify_range(struct mmpool *p, uint32_t idx, uint32_t n) {
  struct lazy *z = lazy_of(p, idx);
  if (!z || n == 0) return;
  if (n > z->npages - idx) n = z->npages - idx;
  engine_lock(&z->lock);
  for (uint32_t i = idx; i < idx + n; i++) verify(p, z, i, 0);
  engine_unlock(&z->lock);
}

static void lazy_warn_p(struct mmpool *p, const char *what, const char *why) {
  lazy_warn_at(p, UINT32_MAX, what, why);
}

// The same, unless page j's damage was said already (a list that names a
// damaged span costs no second line).
static void lazy_warn_at(struct mmpool *p, uint32_t j, const char *what,
                         const char *why) {
  struct lazy *z = lazy_on(p);
  if (z && j < z->npages && bit_get(z->sbad, j)) return;
  if (!z) {
    log_print(LOG_WARN, "pool '%s': damaged %s: %s", p->name, what, why);
    return;
  }
  engine_lock(&z->lock);
  lazy_warn(p, z, what, why);
  engine_unlock(&z->lock);
}

static int bin_member(struct mmpool *p, unsigned b, uint32_t j) {
  if (j >= ST(p)->top || page_verify(p, j) != 0) return 0;
  struct pdesc *d = D(p, j);
  return d->kind == PD_FREE && bin_of(d->npages) == b;
}

static int avail_member(struct mmpool *p, unsigned c, uint32_t j) {
  if (j >= ST(p)->top || page_verify(p, j) != 0) return 0;
  struct pdesc *d = D(p, j);
  return d->kind == PD_SLAB && d->cls == c && (d->flags & PDF_LISTED) &&
         d->owner == OWNER_DETACHED;
}

// Takes page idx (a checked member) off list *head (key: its bin or
// class), writing only neighbours that are members and point back at it.
// A neighbour that does not is cut off: the rest of the list leaks.
static void list_unlink(struct mmpool *p, uint32_t *head, unsigned key,
                        uint32_t idx, const char *list,
                        int (*member)(struct mmpool *, unsigned, uint32_t)) {
  struct pdesc *d = D(p, idx);
  uint32_t prev = d->prev, next = d->next, next0 = next;
  int prev_ok = prev ? member(p, key, prev - 1) &&
                           D(p, prev - 1)->next == idx + 1
                     : *head == idx + 1;
  int next_ok = !next || (member(p, key, next - 1) &&
                          D(p, next - 1)->prev == idx + 1);
  if (!next_ok) next = 0;
  if (prev_ok) {
    if (prev) D(p, prev - 1)->next = next;
    else *head = next;
  }
  if (next) D(p, next - 1)->prev = prev_ok ? prev : 0;
  d->next = d->prev = 0;
  if (!prev_ok || !next_ok) {
    char why[160];
    fmt_format(why, sizeof why, "%s[%u]: page %u's links %u/%u do not "
               "agree with their pages", list, key, idx, prev, next0);
    lazy_warn_at(p, !next_ok ? next0 - 1 : prev ? prev - 1 : UINT32_MAX,
                 "list", why);
  }
}

static void list_push(struct mmpool *p, uint32_t *head, unsigned key,
                      uint32_t idx, const char *list,
                      int (*member)(struct mmpool *, unsigned, uint32_t)) {
  uint32_t h = *head;
  if (h && !(member(p, key, h - 1) && D(p, h - 1)->prev == 0)) {
    char why[120];
    fmt_format(why, sizeof why, "%s[%u] names page %u, not a member: the "
               "list is dropped", list, key, h - 1);
    lazy_warn_p(p, "list", why);
    *head = 0;
  }
  page_list_push(p, head, idx);
}

int page_lazy_any;

int page_lazy_begin(struct mmpool *p) {
  struct lazy *z = &lazy[p->id];
  // Before the bitmaps, which make the pool's pages wait for their check.
  __atomic_store_n(&page_lazy_any, 1, __ATOMIC_RELEASE);
  engine_lock(&z->lock);
  if (z->ok) vmmap_scratch_release(z->ok);
  z->ok = z->bad = z->chk = z->sbad = NULL;
  z->gen = z->npages = z->prefix = 0;
  z->words = 0;
  z->warned = 0;
  z->stuck = 0;
  uint64_t np = p->hdr->npages;
  size_t words = (size_t)((np + 63) / 64);
  size_t len = (4 * words * sizeof(uint64_t) + 4095) & ~(size_t)4095;
  // Zero pages until a bit is set: O(1) whatever the pool's size.
  uint64_t *bits = len ? vmmap_scratch(len) : NULL;
  if (bits) {
    z->ok = bits;
    z->bad = bits + words;
    z->chk = bits + 2 * words;
    z->sbad = bits + 3 * words;
    z->words = words;
    z->npages = (uint32_t)np;
    z->gen = p->gen;
  }
  engine_unlock(&z->lock);
  if (!bits) return -ENOMEM;
  // What page_detach_all does for the whole pool, in O(1): every committed
  // page counts as dirty; the file's own pages are counted by page_stats.
  struct pool_state *st = ST(p);
  uint32_t committed = (uint32_t)((st->length - p->hdr->data_off) >>
                                  PAGE_SHIFT);
  if (st->hiwater != committed) st->hiwater = committed;
  p->pages_used = p->pages_peak = 0;
  __atomic_store_n(&p->fast_len, 0, __ATOMIC_RELEASE);
  return 0;
}

void page_fast_sync(struct mmpool *p) {
  size_t f = __atomic_load_n(&p->data_len, __ATOMIC_RELAXED);
  struct lazy *z = lazy_on(p);
  if (z) {
    size_t pre = (size_t)__atomic_load_n(&z->prefix, __ATOMIC_RELAXED)
                 << PAGE_SHIFT;
    if (pre < f) f = pre;
  }
  __atomic_store_n(&p->fast_len, f, __ATOMIC_RELEASE);
}

void page_lazy_advance(struct mmpool *p) {
  struct lazy *z = lazy_on(p);
  if (!z || __atomic_load_n(&z->stuck, __ATOMIC_RELAXED)) return;
  engine_lock(&z->lock);
  size_t len = __atomic_load_n(&p->data_len, __ATOMIC_RELAXED);
  uint32_t end = (uint32_t)(len >> PAGE_SHIFT), i = z->prefix;
  if (end > z->npages) end = z->npages;
  for (uint32_t work = 0; i < end && work < ADVANCE_PAGES;) {
    if (i % 64 == 0 && i + 64 <= end &&
        __atomic_load_n(&z->chk[i / 64], __ATOMIC_ACQUIRE) == ~(uint64_t)0) {
      i += 64;
      work++;
      continue;
    }
    if (bit_get(z->chk, i)) {
      i++;
      continue;
    }
    int r = verify(p, z, i, V_QUIET);
    if (r < 0) {
      // Damaged: the fast path stops short of it; frees past it take the
      // slow path, which checks each page it needs.
      __atomic_store_n(&z->stuck, 1, __ATOMIC_RELAXED);
      break;
    }
    if (r == V_NOSPAN) {
      // Every page below is checked, so no span holds this one: made
      // inert, as a page above the top.
      struct pdesc *d = D(p, i);
      if (d->head_delta != 0 ||
          (d->owner != OWNER_NONE && d->owner != OWNER_DETACHED))
        make_inert(d, d->kind);
      bit_set(z->chk, i);
    }
    work += D(p, i)->kind == PD_FREE || D(p, i)->kind == PD_SLAB ||
                    D(p, i)->kind == PD_LARGE
                ? D(p, i)->npages
                : 1;
  }
  __atomic_store_n(&z->prefix, i, __ATOMIC_RELAXED);
  size_t f = (size_t)i << PAGE_SHIFT;
  __atomic_store_n(&p->fast_len, f < len ? f : len, __ATOMIC_RELEASE);
  engine_unlock(&z->lock);
}

void page_lazy_hold(struct mmpool *p) { engine_lock(&lazy[p->id].lock); }

void page_lazy_release(struct mmpool *p) {
  engine_unlock(&lazy[p->id].lock);
}

void page_lazy_fork_child(void) {
  for (unsigned i = 0; i <= MMPOOL_MAX_POOLS; i++)
    pthread_mutex_init(&lazy[i].lock, NULL);
}

int page_slab_sound_lazy(struct mmpool *p, struct pdesc *d) {
  uint32_t idx = page_index(p, d);
  struct lazy *z = lazy_of(p, idx);
  if (!z) return 1;
  uint64_t m = (uint64_t)1 << (idx % 64);
  if (z->ok[idx / 64] & m) return 1;
  if (z->bad[idx / 64] & m) return 0;
  uint64_t bm[BITMAP_WORDS];
  char why[200];
  if (slab_scan(p, d, idx, bm, why, sizeof why) == 0) {
    z->ok[idx / 64] |= m;
    return 1;
  }
  z->bad[idx / 64] |= m;
  engine_lock(&z->lock);
  lazy_warn(p, z, "slab", why);
  engine_unlock(&z->lock);
  return 0;
}

struct pdesc *page_avail_first(struct mmpool *p, unsigned c) {
  uint32_t *head = &ST(p)->avail[c];
  while (*head) {
    uint32_t idx = *head - 1;
    struct pdesc *d = D(p, idx);
    // Checked on first use (avail_member); a list that lies is dropped,
    // not followed.
    if (!avail_member(p, c, idx) || d->prev != 0) {
      char why[160];
      fmt_format(why, sizeof why, "avail[%u] names page %u, not a detached "
                 "slab of its class: the list is dropped", c, idx);
      lazy_warn_p(p, "list", why);
      *head = 0;
      return NULL;
    }
    if (page_slab_sound(p, d)) return d;
    page_avail_remove(p, d);  // never adopted: its blocks leak
  }
  return NULL;
}

// The next span head at or after page i for a walk of [i, top): i itself
// once checked, or past a page that is not one (damaged, or a free span's
// middle). *n: its pages, 0 when i is not a head.
static uint32_t walk_step(struct mmpool *p, uint32_t i, uint32_t *n) {
  *n = 0;
  if (page_verify(p, i) != 0) return i + 1;
  struct pdesc *d = D(p, i);
  if ((d->kind != PD_FREE && d->kind != PD_SLAB && d->kind != PD_LARGE) ||
      d->head_delta != 0 || d->npages == 0)
    return i + 1;
  *n = d->npages;
  return i + d->npages;
}

int page_walk(struct mmpool *p, int (*fn)(void *, size_t, void *),
              void *arg) {
  struct pool_state *st = ST(p);
  uint64_t bm[BITMAP_WORDS];
  char why[16];
  for (uint32_t i = 0, next, n; i < st->top; i = next) {
    next = walk_step(p, i, &n);
    if (!n) continue;
    struct pdesc *d = D(p, i);
    uintptr_t a = page_addr(p, i);
    if (d->kind == PD_LARGE) {
      int r = fn((void *)a, d->req, arg);
      if (r) return r;
    } else if (d->kind == PD_SLAB) {
      if (slab_scan(p, d, i, bm, why, sizeof why)) continue;
      for (uint32_t b = 0; b < d->inited; b++) {
        if (bm[b / 64] >> (b % 64) & 1) continue;
        uintptr_t blk = a + (uintptr_t)b * d->bsize;
        int r = fn((void *)blk, d->bsize - slack_of(p, d, blk - p->base),
                   arg);
        if (r) return r;
      }
    }
  }
  return 0;
}

// Blocks waiting on a slab's thread-free list. Read while other threads may
// push, so every link is checked before it is followed.
static uint32_t thread_free_count(struct mmpool *p, struct pdesc *d,
                                  uint32_t idx) {
  uint64_t slab = (uint64_t)(p->data - p->base) + ((uint64_t)idx << PAGE_SHIFT);
  uint64_t end = slab + (uint64_t)d->nblocks * d->bsize;
  uint64_t off = TF_HEAD(__atomic_load_n(&d->thread_free, __ATOMIC_ACQUIRE));
  uint32_t k = 0;
  while (off && k < pdesc_used(d) && off >= slab && off < end) {
    k++;
    off = *(uint64_t *)(p->base + off);
  }
  return k;
}

void page_stats(struct mmpool *p, mmpool_stats_t *o) {
  struct pool_state *st = ST(p);
  memset(o, 0, sizeof *o);
  o->capacity = p->capacity;
  size_t data = st->length - p->hdr->data_off;
  o->mapped = p->hdr->desc_off + st->meta_committed + data;
  o->metadata = p->hdr->desc_off + (size_t)st->top * sizeof(struct pdesc);
  o->generation = p->hdr->generation;
  o->nclasses = SC_COUNT;
  for (unsigned c = 0; c < SC_COUNT; c++)
    o->classes[c].block_size = sc_table[c].bsize;
  size_t used_pages = 0;
  for (uint32_t i = 0, next, n; i < st->top; i = next) {
    next = walk_step(p, i, &n);
    if (!n) continue;
    struct pdesc *d = D(p, i);
    if (d->kind == PD_LARGE) {
      o->in_use += (size_t)d->npages << PAGE_SHIFT;
      o->in_use_blocks++;
      o->large_blocks++;
      used_pages += d->npages;
    } else if (d->kind == PD_SLAB) {
      mmpool_class_stats_t *c = &o->classes[d->cls];
      uint32_t used = pdesc_used(d);
      used -= thread_free_count(p, d, i);  // freed, not yet collected
      if (used > d->nblocks) used = d->nblocks;
      c->blocks_used += used;
      c->blocks_free += d->nblocks - used;
      c->pages += d->npages;
      o->in_use += (size_t)used * d->bsize;
      o->in_use_blocks += used;
      used_pages += d->npages;
    }
  }
  o->free_bytes = data - (used_pages << PAGE_SHIFT);
  // pages_used and pages_peak count from the open: what the pool held then
  // is what it holds now less pages_used.
  int64_t peak = (int64_t)used_pages - p->pages_used + p->pages_peak;
  if (peak < (int64_t)used_pages) peak = (int64_t)used_pages;
  o->peak = (size_t)peak << PAGE_SHIFT;
}

uint64_t page_room(struct mmpool *p) {
  uint64_t total = p->hdr->npages, top = ST(p)->top;
  return top < total ? total - top : 0;
}
