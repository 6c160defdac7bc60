// route.c: the routes of the configuration applied to every allocation of
// the preload library (see route.h for the fast path's side).
//
// Two kinds of state (the class of a caller's module comes from module.c):
//   - per thread (tl_st): its name and thread= matches, its tables (one per
//     class it has called from), and the counts of the slow path. It hangs
//     on the thread's record in the engine's one registry of threads
//     (heap_thread_join), whose lock fork's handlers take; the engine tells
//     us when a thread exits (heap_thread_exit_hook) or a fork child starts
//     (heap_fork_child_hook) and unlinks the record itself.
// The counts themselves (blocks and bytes per route, those of exited
// threads) are route_stats.c's.
//
// Never allocates: tables come from the engine's arena (heap_arena_alloc)
// and are recycled.
#define _GNU_SOURCE
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "module.h"
#include "route.h"

int route_by_lib;
size_t route_tab0_limit = SC_DIRECT_MAX + 1;
size_t route_main_limit = SC_DIRECT_MAX + 1;
__thread struct tl_route tl_route;
__thread struct rtable *tl_ctab[GOT_CLASSES] = {
    [0 ... GOT_CLASSES - 1] = &route_empty_table};
struct rtable route_empty_table;

static int thread_routed;                       // thread= routes exist
static uint32_t open_gen[MMPOOL_MAX_POOLS + 1]; // gen of each pool at start

// ---------------------------------------------------------------------------
// Evaluating the routes

int route_pool_ok(const struct mmpool *p) {
  return p && __atomic_load_n(&p->state, __ATOMIC_ACQUIRE) == POOL_OPEN &&
         p->gen == open_gen[p->id];
}

static struct mmpool *route_pool(unsigned r, struct mmpool *def) {
  return r == ROUTE_DEFAULT ? def : shim_cfg_pool[shim_cfg.routes[r].pool];
}

// The first route that takes every size in [a, b], ROUTE_NONE when the
// first route that takes some of them does not take them all, else
// ROUTE_DEFAULT. bits: the lib= and thread= routes that match the caller.
// Routes to a closed pool are skipped.
static unsigned eval_range(uint64_t a, uint64_t b, uint64_t bits) {
  for (unsigned i = 0; i < shim_cfg.nroutes; i++) {
    const struct config_route *r = &shim_cfg.routes[i];
    if (r->cond == CONFIG_SIZE) {
      if (r->hi < a || r->lo > b) continue;
      if (!route_pool_ok(shim_cfg_pool[r->pool])) continue;
      return r->lo <= a && r->hi >= b ? i : ROUTE_NONE;
    }
    if (((bits >> i) & 1) && route_pool_ok(shim_cfg_pool[r->pool])) return i;
  }
  return ROUTE_DEFAULT;
}

static unsigned eval(size_t n, uint64_t bits) {
  return eval_range(n, n, bits);
}

// The pool id a table holds for route r (0: ROUTE_NONE, the slow path).
static uint8_t pid_of(unsigned r, struct mmpool *def) {
  return r == ROUTE_NONE ? 0 : (uint8_t)route_pool(r, def)->id;
}

// Where the sizes [lo, hi] of one class split into two parts that one
// route each takes whole: the last size of the first part, or 0 when no
// such split exists (two boundaries or more inside the class).
static uint64_t class_cut(uint64_t lo, uint64_t hi, uint64_t bits) {
  for (unsigned i = 0; i < shim_cfg.nroutes; i++) {
    const struct config_route *r = &shim_cfg.routes[i];
    if (r->cond != CONFIG_SIZE) continue;
    uint64_t cand[2] = {r->lo - 1, r->hi}; // a route's edges
    for (unsigned k = 0; k < 2; k++)
      if (cand[k] >= lo && cand[k] < hi &&
          eval_range(lo, cand[k], bits) != ROUTE_NONE &&
          eval_range(cand[k] + 1, hi, bits) != ROUTE_NONE)
        return cand[k];
  }
  return 0;
}

static void fill(struct rtable *t, uint64_t bits, struct mmpool *def) {
  // Sizes 16s-15 .. 16s share a route unless a boundary cuts them.
  for (unsigned s = 0; s <= SC_DIRECT_MAX / 16; s++) {
    uint64_t lo = s ? 16 * (uint64_t)s - 15 : 0, hi = 16 * (uint64_t)s;
    unsigned r = eval_range(lo, hi, bits);
    for (uint64_t n = lo; n <= hi; n++) {
      unsigned rn = r == ROUTE_NONE ? eval(n, bits) : r;
      t->route[n] = (uint8_t)rn;
      t->pid[n] = pid_of(rn, def);
    }
  }
  for (unsigned c = 0; c < SC_COUNT; c++) {
    unsigned r[2] = {ROUTE_NONE, ROUTE_NONE};
    uint64_t lo = c ? sc_table[c - 1].bsize + 1 : 0, hi = sc_table[c].bsize;
    uint64_t cut = hi;
    if (hi > SC_DIRECT_MAX) { // direct sizes use the entries above
      r[0] = r[1] = eval_range(lo, hi, bits);
      if (r[0] == ROUTE_NONE && (cut = class_cut(lo, hi, bits)) != 0) {
        r[0] = eval_range(lo, cut, bits);
        r[1] = eval_range(cut + 1, hi, bits);
      }
    }
    t->ccut[c] = (uint32_t)cut;
    for (unsigned k = 0; k < 2; k++) {
      t->croute[c][k] = (uint8_t)r[k];
      t->cpid[c][k] = pid_of(r[k], def);
    }
  }
}

// ---------------------------------------------------------------------------
// Threads

struct tstate {
  int registered;   // hangs on the engine's thread registry, counts there
  int exited;       // its exit hook ran: no tables any more
  int filled;       // the tables are made for name
  char name[16];
  uint64_t thread_mask; // bit i: thread= route i matches name
  // By class; without lib= routes tab[0] is &tl_route.tab0, with them
  // every table comes from the table arena.
  struct rtable *tab[ROUTE_MAX_CLASSES];
  uintptr_t *ra;                         // the thread's tl_route.rc.ra
  struct route_totals c;                 // slow path, and folded tables
};
static __thread struct tstate tl_st;
static struct rtable *free_tabs; // registry lock

static void refill_all(struct tstate *st, struct mmpool *def) {
  for (unsigned c = 0; c < ROUTE_MAX_CLASSES; c++) {
    struct rtable *t = st->tab[c];
    if (!t) continue;
    route_stats_fold(t, &st->c);
    fill(t, st->thread_mask | t->lib_mask, def);
  }
  st->filled = 1;
  // tab0's sizes below route_main_limit all name pid[0]'s pool.
  if (route_main_limit) heap_set_main(tl_route.tab0.pid[0]);
}

static void thread_register(struct tstate *st) {
  st->tab[0] = &tl_route.tab0; // class 0 (every caller without lib= routes)
  st->ra = tl_route.rc.ra;
  heap_thread_join(st);
  st->registered = 1;
}

// The routing state of each registered thread (not yet past its exit
// hook). pre: registry lock.
#define FOR_EACH_TSTATE(st)                                                  \
  for (struct heap_thread *t_ = heap_threads(); t_; t_ = t_->next)          \
    for (struct tstate *st = t_->client; st && st->registered; st = NULL)

static uint64_t thread_mask_of(const char *name) {
  uint64_t m = 0;
  for (unsigned i = 0; i < shim_cfg.nroutes; i++)
    if (shim_cfg.routes[i].cond == CONFIG_THREAD &&
        config_glob_match(shim_cfg.routes[i].glob, name))
      m |= (uint64_t)1 << i;
  return m;
}

// Before routing: registered, and tables made for the thread's name.
static void refresh(struct tstate *st, struct mmpool *def) {
  if (!st->registered) thread_register(st);
  if (thread_routed) {
    char name[16] = {0};
    syscall(SYS_prctl, PR_GET_NAME, name, 0, 0, 0);
    if (st->filled && memcmp(name, st->name, sizeof name) == 0) return;
    memcpy(st->name, name, sizeof name);
    st->thread_mask = thread_mask_of(name);
  } else if (st->filled) {
    return;
  }
  refill_all(st, def);
}

// The registry lock is held for the three helpers below.
static void release_tables(struct tstate *st) {
  for (unsigned c = 0; c < ROUTE_MAX_CLASSES; c++) {
    struct rtable *t = st->tab[c];
    if (!t || !t->recycled) continue;
    t->next_free = free_tabs;
    free_tabs = t;
    st->tab[c] = NULL;
  }
}

static void move_to_gone(struct tstate *st) {
  for (unsigned c = 0; c < ROUTE_MAX_CLASSES; c++)
    if (st->tab[c]) route_stats_fold(st->tab[c], &st->c);
  route_stats_retire(&st->c);
}

static struct rtable *table_new(void) {
  heap_registry_lock();
  struct rtable *t = free_tabs;
  if (t) {
    free_tabs = t->next_free;
  } else {
    t = heap_arena_alloc(sizeof *t);
  }
  heap_registry_unlock();
  if (t) {
    memset(t, 0, sizeof *t);
    t->recycled = 1;
  }
  return t;
}

// Thread exit (first destructor pass): counts to gone, tables released.
// Allocations made later by the thread's other destructors take the slow
// path and count straight into gone.
static void thread_exit_hook(void) {
  struct tstate *st = &tl_st;
  st->exited = 1;
  if (!st->registered) return;
  for (unsigned i = 0; i < ROUTE_RA_CACHE; i++)
    __atomic_store_n(&tl_route.rc.ra[i], 0, __ATOMIC_RELAXED);
  heap_registry_lock();
  move_to_gone(st);
  release_tables(st);
  st->registered = 0; // the engine unlinks the record after this hook
  heap_registry_unlock();
  // Only this thread reads its tab0's pool ids and its tl_ctab.
  memset(tl_route.tab0.pid, 0, sizeof tl_route.tab0.pid);
  memset(tl_route.tab0.cpid, 0, sizeof tl_route.tab0.cpid);
  heap_set_main(0);
  for (unsigned k = 0; k < GOT_CLASSES; k++)
    tl_ctab[k] = &route_empty_table;
}

// Fork child: only this thread lives on, and the counts start from zero:
// the child's report tells what the child allocated (its parent reports
// the rest).
static void fork_child_hook(void) {
  FOR_EACH_TSTATE(st) // the engine then drops the others' records
    if (st != &tl_st) release_tables(st);
  route_stats_forget_gone();
  struct tstate *me = &tl_st;
  memset(&me->c, 0, sizeof me->c);
  for (unsigned c = 0; c < ROUTE_MAX_CLASSES; c++)
    if (me->tab[c]) route_stats_zero(me->tab[c]);
}

void route_modules_changed(void) {
  if (!route_by_lib) return;
  module_table_stale();
  heap_registry_lock();
  FOR_EACH_TSTATE(st)
    for (unsigned i = 0; i < ROUTE_RA_CACHE; i++)
      __atomic_store_n(&st->ra[i], 0, __ATOMIC_RELAXED);
  heap_registry_unlock();
}

// ---------------------------------------------------------------------------
// The slow path

static struct rtable *class_table(struct tstate *st, unsigned cls,
                                  struct mmpool *def) {
  struct rtable *t = st->tab[cls];
  if (t) return t;
  t = table_new();
  if (!t) return NULL;
  t->lib_mask = module_class_mask(cls);
  fill(t, st->thread_mask | t->lib_mask, def);
  // route_totals may be reading this thread's tables: publish it filled.
  __atomic_store_n(&st->tab[cls], t, __ATOMIC_RELEASE);
  if (cls < GOT_CLASSES) tl_ctab[cls] = t; // its entry points
  return t;
}

// This thread's table for callers at ra, entered in its cache; NULL when
// there is no memory for it (then *cls tells the caller's class).
static struct rtable *table_for(struct tstate *st, uintptr_t ra,
                                struct mmpool *def, unsigned *cls) {
  unsigned i = (uint8_t)ra;
  if (ra && tl_route.rc.ra[i] == ra) return tl_route.rc.tab[i];
  int unbound;
  int cache = module_caller_class(ra, cls, &unbound) == 0;
  if (unbound) module_repatch(ra, *cls);
  struct rtable *t = class_table(st, *cls, def);
  if (!t) return NULL;
  if (cache && ra) {
    tl_route.rc.tab[i] = t;
    __atomic_store_n(&tl_route.rc.ra[i], ra, __ATOMIC_RELEASE);
  }
  return t;
}

int route_lane_ok(unsigned id) {
  const struct tstate *st = &tl_st;
  return !thread_routed && st->filled && !st->exited &&
         route_pool_ok(&pool_table[id]);
}

struct mmpool *route_pick(size_t n, uintptr_t ra, struct mmpool *def,
                          unsigned *route) {
  struct tstate *st = &tl_st;
  if (unlikely(st->exited)) {
    // No tables after the thread's exit hook: evaluate in full.
    uint64_t bits = 0;
    unsigned cls;
    int unbound;
    if (route_by_lib) {
      module_caller_class(ra, &cls, &unbound);
      bits = module_class_mask(cls);
    }
    if (thread_routed) {
      char name[16] = {0};
      syscall(SYS_prctl, PR_GET_NAME, name, 0, 0, 0);
      bits |= thread_mask_of(name);
    }
    *route = eval(n, bits);
    return route_pool(*route, def);
  }
  refresh(st, def);
  unsigned cls = 0;
  struct rtable *t = route_by_lib ? table_for(st, ra, def, &cls)
                                  : &tl_route.tab0;
  if (!t) { // no memory for the table: evaluate in full
    *route = eval(n, st->thread_mask | module_class_mask(cls));
    return route_pool(*route, def);
  }
  if (n <= SC_SMALL_MAX) {
    unsigned id, r;
    if (n <= SC_DIRECT_MAX) {
      id = t->pid[n], r = t->route[n];
    } else {
      unsigned c = sc_of(n), part = n > t->ccut[c];
      id = t->cpid[c][part], r = t->croute[c][part];
    }
    if (id && route_pool_ok(&pool_table[id])) {
      *route = r;
      return &pool_table[id];
    }
    if (id) refill_all(st, def); // a pool closed since the tables were made
  }
  *route = eval(n, st->thread_mask | t->lib_mask);
  return route_pool(*route, def);
}

void route_count(unsigned r, size_t n, size_t align, int fell_back) {
  struct tstate *st = &tl_st;
  uint64_t b = route_stats_bytes(n, align);
  if (unlikely(!st->registered)) // exited, or not routing yet
    route_stats_add_gone(r, b, fell_back);
  else
    route_stats_add(&st->c, r, b, fell_back);
}

RARE int route_totals(struct route_totals *out) {
  memset(out, 0, sizeof *out);
  route_stats_gone(out);
  if (tl_locks) return 0;
  heap_registry_lock();
  // Other threads may still be counting: their figures are read as they
  // are at this moment (whole 64-bit words).
  FOR_EACH_TSTATE(st) {
    route_stats_sum(out, &st->c);
    for (unsigned c = 0; c < ROUTE_MAX_CLASSES; c++) {
      const struct rtable *t = __atomic_load_n(&st->tab[c], __ATOMIC_ACQUIRE);
      if (t) route_stats_table(t, out);
    }
  }
  heap_registry_unlock();
  return 1;
}

void route_init(const struct got_entries *entries) {
  route_by_lib = shim_cfg.lib_routes > 0;
  route_tab0_limit = route_by_lib ? 0 : SC_DIRECT_MAX + 1;
  // The first size where a size= route's verdict may change.
  route_main_limit = route_by_lib ? 0 : SC_DIRECT_MAX + 1;
  for (unsigned i = 0; i < shim_cfg.nroutes; i++) {
    const struct config_route *r = &shim_cfg.routes[i];
    if (r->cond != CONFIG_SIZE) continue;
    uint64_t edge = r->lo ? r->lo : r->hi < UINT64_MAX ? r->hi + 1 : r->hi;
    if (edge < route_main_limit) route_main_limit = (size_t)edge;
  }
  thread_routed = shim_cfg.thread_routes > 0;
  for (unsigned id = 1; id <= MMPOOL_MAX_POOLS; id++)
    if (pool_table[id].state == POOL_OPEN) open_gen[id] = pool_table[id].gen;
  heap_thread_exit_hook = thread_exit_hook;
  heap_fork_child_hook = fork_child_hook;
  if (route_by_lib) module_init(entries);
}
