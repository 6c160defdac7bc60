// module.c: which loaded module each return address belongs to, and the
// class of each module for lib= routes (module.h).
//
// The module table holds the executable segments of every loaded module,
// sorted, each with its class: the set of lib= routes its name matches
// (class 0: none). It is rebuilt by one thread at a time from
// dl_iterate_phdr, then published under a sequence counter; readers never
// wait (a reader that meets a rebuild routes that one call as an unknown
// module). Each build also points the module's GOT slots of malloc and
// calloc at its class's entry points (got.c).
//
// Never allocates, and holds no lock of ours while dl_iterate_phdr runs.
#define _GNU_SOURCE
#include <link.h>
#include <stddef.h>
#include <string.h>
#include <sys/auxv.h>

#include "got.h"
#include "log.h"
#include "module.h"
#include "shim.h"

struct module {
  uintptr_t lo, hi; // an executable segment [lo, hi)
  uint32_t cls;
  uint32_t unbound; // got_patch found slots not bound yet: patch again
};
#define MOD_MAX 4096
static struct module mods[MOD_MAX], mods_new[MOD_MAX];
static unsigned nmods;
static unsigned mod_seq;  // odd while mods[] is being written
static int mod_building;  // one builder at a time (try-lock)
static int mod_dirty;     // a dlclose happened: rebuild before trusting mods
static unsigned long long mod_adds, mod_subs; // the loader's counters seen
static int mod_built;
static uint64_t cls_mask[ROUTE_MAX_CLASSES]; // class -> lib= routes matched
static unsigned ncls = 1;                    // class 0: no lib= route
static const char *exe_name;                 // the executable, as run
static const struct got_entries *entries;    // for got_patch

static uint64_t lib_mask_of(const char *path) {
  uint64_t m = 0;
  for (unsigned i = 0; i < shim_cfg.nroutes; i++)
    if (shim_cfg.routes[i].cond == CONFIG_LIB &&
        config_route_lib_match(&shim_cfg.routes[i], path))
      m |= (uint64_t)1 << i;
  return m;
}

static unsigned class_of_mask(uint64_t m) {
  unsigned n = __atomic_load_n(&ncls, __ATOMIC_ACQUIRE);
  for (unsigned c = 0; c < n; c++)
    if (cls_mask[c] == m) return c;
  if (n == ROUTE_MAX_CLASSES) {
    static int warned;
    if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
      log_print(LOG_WARN, "more than %d different sets of lib= routes match "
                "the loaded modules: the others are routed as if no lib= "
                "route matched", ROUTE_MAX_CLASSES);
    return 0;
  }
  cls_mask[n] = m;
  __atomic_store_n(&ncls, n + 1, __ATOMIC_RELEASE);
  return n;
}

struct build {
  unsigned n;
  int truncated;
  unsigned long long adds, subs;
};

static void counters(struct build *b, const struct dl_phdr_info *info,
                     size_t size) {
  if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs)
    b->adds = info->dlpi_adds, b->subs = info->dlpi_subs;
}

// The main program has an empty name: it is the executable as run.
static const char *module_name(const struct dl_phdr_info *info) {
  return info->dlpi_name && *info->dlpi_name ? info->dlpi_name : exe_name;
}

RARE static int build_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  struct build *b = arg;
  counters(b, info, size);
  const char *name = module_name(info);
  unsigned cls = class_of_mask(lib_mask_of(name));
  uint32_t unbound = (uint32_t)got_patch(info, name, cls, entries);
  for (unsigned i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X) || !ph->p_memsz)
      continue;
    if (b->n == MOD_MAX) {
      b->truncated = 1;
      break;
    }
    struct module m = {info->dlpi_addr + ph->p_vaddr,
                       info->dlpi_addr + ph->p_vaddr + ph->p_memsz, cls,
                       unbound};
    unsigned j = b->n++; // insertion sort: modules come mostly in order
    while (j > 0 && mods_new[j - 1].lo > m.lo) {
      mods_new[j] = mods_new[j - 1];
      j--;
    }
    mods_new[j] = m;
  }
  return 0;
}

static int peek_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  counters(arg, info, size);
  return 1; // the first module is enough
}

// Whether the module table may be out of date.
static int modules_changed(void) {
  struct build b = {0};
  dl_iterate_phdr(peek_cb, &b);
  return !__atomic_load_n(&mod_built, __ATOMIC_ACQUIRE) ||
         __atomic_load_n(&mod_dirty, __ATOMIC_ACQUIRE) ||
         b.adds != __atomic_load_n(&mod_adds, __ATOMIC_RELAXED) ||
         b.subs != __atomic_load_n(&mod_subs, __ATOMIC_RELAXED);
}

// Rebuilds the table; -1 when another thread is rebuilding it. Called with
// no lock of ours held: dl_iterate_phdr takes the loader's lock, and a
// thread holding that lock may be waiting in malloc.
RARE static int modules_build(void) {
  if (__atomic_exchange_n(&mod_building, 1, __ATOMIC_ACQUIRE)) return -1;
  __atomic_store_n(&mod_dirty, 0, __ATOMIC_RELEASE);
  struct build b = {0};
  dl_iterate_phdr(build_cb, &b);
  static int warned;
  if (b.truncated && !warned) {
    warned = 1;
    log_print(LOG_WARN, "more than %d executable segments loaded: lib= "
              "routes ignore the others", MOD_MAX);
  }
  unsigned seq = __atomic_load_n(&mod_seq, __ATOMIC_RELAXED);
  __atomic_store_n(&mod_seq, seq + 1, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_RELEASE);
  memcpy(mods, mods_new, b.n * sizeof mods[0]);
  __atomic_store_n(&nmods, b.n, __ATOMIC_RELAXED);
  __atomic_store_n(&mod_seq, seq + 2, __ATOMIC_RELEASE);
  __atomic_store_n(&mod_adds, b.adds, __ATOMIC_RELAXED);
  __atomic_store_n(&mod_subs, b.subs, __ATOMIC_RELAXED);
  __atomic_store_n(&mod_built, 1, __ATOMIC_RELEASE);
  __atomic_store_n(&mod_building, 0, __ATOMIC_RELEASE);
  return 0;
}

// The module holding ra, found in the table under the sequence counter:
// its class, and whether got_patch left slots of it unbound. 1 (found), 0
// (in no module, or the table must be rebuilt first), -1 (a rebuild is
// under way).
RARE static int module_class(uintptr_t ra, unsigned *cls, int *unbound) {
  unsigned seq = __atomic_load_n(&mod_seq, __ATOMIC_ACQUIRE);
  if (seq & 1) return -1;
  if (__atomic_load_n(&mod_dirty, __ATOMIC_ACQUIRE)) return 0;
  unsigned lo = 0, hi = __atomic_load_n(&nmods, __ATOMIC_RELAXED);
  if (hi > MOD_MAX) hi = MOD_MAX;
  int found = 0;
  while (lo < hi) { // the last segment starting at or below ra
    unsigned mid = lo + (hi - lo) / 2;
    if (__atomic_load_n(&mods[mid].lo, __ATOMIC_RELAXED) <= ra) lo = mid + 1;
    else hi = mid;
  }
  if (lo > 0 && ra < __atomic_load_n(&mods[lo - 1].hi, __ATOMIC_RELAXED)) {
    *cls = __atomic_load_n(&mods[lo - 1].cls, __ATOMIC_RELAXED);
    *unbound = (int)__atomic_load_n(&mods[lo - 1].unbound, __ATOMIC_RELAXED);
    found = *cls < ROUTE_MAX_CLASSES;
  }
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
  if (__atomic_load_n(&mod_seq, __ATOMIC_RELAXED) != seq) return -1;
  return found;
}

RARE int module_caller_class(uintptr_t ra, unsigned *cls, int *unbound) {
  *cls = 0;
  *unbound = 0;
  int f = ra ? module_class(ra, cls, unbound) : -1;
  if (f == 0 && modules_changed() && modules_build() == 0)
    f = module_class(ra, cls, unbound);
  if (f <= 0) *cls = 0, *unbound = 0; // in no module: no lib= match
  return f < 0 ? -1 : 0;
}

// got_patch once more for the module holding ra (see module.h).
struct repatch {
  uintptr_t ra;
  unsigned cls;
};

RARE static int repatch_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  struct repatch *r = arg;
  for (unsigned i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X) || r->ra < lo ||
        r->ra - lo >= ph->p_memsz)
      continue;
    uint32_t unbound =
        (uint32_t)got_patch(info, module_name(info), r->cls, entries);
    // Noted in the table as it is now; a table rebuilt meanwhile has
    // patched again itself (a flag cleared wrongly costs speed only).
    unsigned seq = __atomic_load_n(&mod_seq, __ATOMIC_ACQUIRE);
    unsigned n = __atomic_load_n(&nmods, __ATOMIC_RELAXED);
    for (unsigned j = 0; !(seq & 1) && j < n && j < MOD_MAX; j++)
      if (__atomic_load_n(&mods[j].lo, __ATOMIC_RELAXED) == lo)
        __atomic_store_n(&mods[j].unbound, unbound, __ATOMIC_RELAXED);
    return 1;
  }
  return 0;
}

void module_repatch(uintptr_t ra, unsigned cls) {
  struct repatch r = {ra, cls};
  dl_iterate_phdr(repatch_cb, &r);
}

uint64_t module_class_mask(unsigned cls) {
  return cls < ROUTE_MAX_CLASSES ? cls_mask[cls] : 0;
}

void module_table_stale(void) {
  __atomic_store_n(&mod_dirty, 1, __ATOMIC_RELEASE);
  modules_build(); // else the thread that is building sees mod_dirty
}

void module_init(const struct got_entries *e) {
  entries = e;
  const char *exe = (const char *)getauxval(AT_EXECFN);
  exe_name = exe ? exe : "";
  modules_build();
}
