// vmmap.c: the address-space ledger (see vmmap.h).
#define _GNU_SOURCE
#include "vmmap.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "fmt.h"
#include "lock.h"
#include "log.h"
#include "os.h"

#define VM_MAX_RANGES 256

enum { VR_FREE = 0, VR_POOL = 1, VR_INTERNAL = 2, VR_SCRATCH = 3, VR_VIEW = 4 };

struct vm_range {
  uintptr_t base;
  size_t len;      // mapped (pools: the reserved part)
  size_t cap;      // pools: the capacity, the most len may grow to
  int kind;
  unsigned owner;  // pool id
};

uint8_t vm_table[VM_TABLE_SIZE];
static struct vm_range ranges[VM_MAX_RANGES];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uintptr_t auto_cursor = VM_AUTO_START;

void vmmap_lock(void) { engine_lock(&lock); }
void vmmap_unlock(void) { engine_unlock(&lock); }
void vmmap_child_reset(void) { pthread_mutex_init(&lock, NULL); }

static struct vm_range *slot_free(void) {
  for (unsigned i = 0; i < VM_MAX_RANGES; i++)
    if (ranges[i].kind == VR_FREE) return &ranges[i];
  return NULL;
}

// The own range that contains [addr, addr+len), or NULL. pre: lock held.
static struct vm_range *owning(uintptr_t addr, size_t len) {
  for (unsigned i = 0; i < VM_MAX_RANGES; i++) {
    struct vm_range *r = &ranges[i];
    if (r->kind != VR_FREE && addr >= r->base && len <= r->len &&
        addr - r->base <= r->len - len)
      return r;
  }
  return NULL;
}

static void table_set(uintptr_t base, size_t len, unsigned id) {
  for (uintptr_t a = base; a < base + len; a += (uintptr_t)1 << VM_TABLE_SHIFT)
    __atomic_store_n(&vm_table[(a >> VM_TABLE_SHIFT) & (VM_TABLE_SIZE - 1)],
                     (uint8_t)id, __ATOMIC_RELEASE);
}

static size_t gib_round(size_t len) {
  size_t g = (size_t)1 << VM_TABLE_SHIFT;
  return (len + g - 1) & ~(g - 1);
}

// Whether [a, a+len) meets the capacity of a pool in the ledger (whose
// unreserved part is kept for it to grow into). pre: lock held.
static int meets_pool(uintptr_t a, size_t len) {
  for (unsigned i = 0; i < VM_MAX_RANGES; i++) {
    struct vm_range *r = &ranges[i];
    if (r->kind == VR_POOL && a < r->base + r->cap && r->base < a + len)
      return 1;
  }
  return 0;
}

// Why the kernel refused len bytes of address space.
static void refusal(char *why, size_t why_len, uintptr_t at, size_t len) {
  char sz[32];
  uint64_t as = os_as_limit();
  fmt_size(sz, sizeof sz, len);
  if (as) {
    fmt_format(why, why_len, "the kernel refused %s of address space at "
               "0x%lx (RLIMIT_AS is %llu KiB)", sz, (unsigned long)at,
               (unsigned long long)(as >> 10));
  } else {
    fmt_format(why, why_len, "the kernel refused %s of address space at "
               "0x%lx (out of memory)", sz, (unsigned long)at);
  }
}

// Reserves [a, a+len), halving len down to min on -ENOMEM. pre: lock held.
static int reserve_shrinking(uintptr_t a, size_t *len, size_t min) {
  for (;;) {
    uintptr_t got;
    int r = os_reserve(a, *len, &got);
    if (r != -ENOMEM || *len <= min) return r;
    size_t half = (*len / 2) & ~(((size_t)64 << 10) - 1);
    *len = half > min ? half : min;
  }
}

int vmmap_reserve_pool(unsigned id, uintptr_t base, size_t cap, size_t first,
                       size_t min_first, uintptr_t *out, size_t *got_len,
                       char *why, size_t why_len) {
  int r = -ENOMEM;
  uintptr_t got = 0;
  size_t len = first;
  vmmap_lock();
  struct vm_range *slot = slot_free();
  if (!slot) {
    fmt_format(why, why_len, "too many mapped ranges (%d)", VM_MAX_RANGES);
    goto out;
  }
  if (base) {
    char occ[256];
    // The whole capacity must be free, though only its start is reserved.
    if (os_find_mapping(base, cap, NULL, occ, sizeof occ) == 1) {
      r = -EEXIST;
    } else {
      r = reserve_shrinking(base, &len, min_first);
      if (r == -EEXIST) os_describe_mapping(base, len, occ, sizeof occ);
    }
    if (r == -EEXIST) {
      fmt_format(why, why_len,
                 "the range 0x%lx-0x%lx is occupied by %s", (unsigned long)base,
                 (unsigned long)(base + cap), occ);
    } else if (r == -ENOMEM) {
      refusal(why, why_len, base, len);
    } else if (r) {
      char eb[32];
      fmt_format(why, why_len, "cannot reserve 0x%lx-0x%lx (%s)",
                 (unsigned long)base, (unsigned long)(base + len),
                 os_strerror(-r, eb, sizeof eb));
    }
    got = base;
  } else {
    // Walk the window in GiB steps from where the last search stopped;
    // whole GiBs, so that no other pool shares a table entry with this one.
    size_t step = gib_round(cap);
    uintptr_t start = auto_cursor, a = start;
    r = -ENOSPC;
    for (int wrapped = 0;;) {
      if (a + step > VM_AUTO_END) {
        if (wrapped) break;
        wrapped = 1;
        a = VM_AUTO_START;
      }
      if (wrapped && a >= start) break;
      uintptr_t next = a + ((uintptr_t)1 << VM_TABLE_SHIFT), end = 0;
      if (!meets_pool(a, step)) {
        int q = os_find_mapping(a, step, &end, NULL, 0);
        if (q != 1) {
          r = reserve_shrinking(a, &len, min_first);
          if (r == 0) break;
          if (r == -ENOMEM) {
            refusal(why, why_len, a, len);
            break;
          }
        } else if (end > next) {
          // Past the occupant, on the next GiB boundary.
          next = (uintptr_t)gib_round(end);
        }
      }
      a = next;
    }
    if (r == -ENOSPC) {
      r = -ENOMEM;
      fmt_format(why, why_len,
                 "no free %zu-byte range in 0x%lx-0x%lx for base=auto", cap,
                 (unsigned long)VM_AUTO_START, (unsigned long)VM_AUTO_END);
    } else if (r == 0) {
      got = a;
      auto_cursor = got + step;
    }
  }
  if (r == 0) {
    *slot = (struct vm_range){got, len, cap, VR_POOL, id};
    table_set(got, len, id);
    *out = got;
    *got_len = len;
  }
out:
  vmmap_unlock();
  return r;
}

int vmmap_grow_pool(uintptr_t base, size_t upto, size_t *reserved, char *why,
                    size_t why_len) {
  int r = 0;
  vmmap_lock();
  struct vm_range *rg = NULL;
  for (unsigned i = 0; i < VM_MAX_RANGES && !rg; i++)
    if (ranges[i].kind == VR_POOL && ranges[i].base == base) rg = &ranges[i];
  if (!rg) {
    fmt_format(why, why_len, "0x%lx is not a pool's base", (unsigned long)base);
    r = -EFAULT;
  } else if (upto > rg->cap) {
    fmt_format(why, why_len, "%zu bytes are past its capacity", upto);
    r = -ENOMEM;
  } else if (upto > rg->len) {
    // What is needed, in growth units; and, when the kernel agrees, as
    // much again as is reserved (up to VM_GROW_MAX), so that a growing
    // pool extends its reservation a logarithmic number of times.
    size_t need = (upto + VM_GROW_UNIT - 1) & ~(VM_GROW_UNIT - 1);
    size_t ahead = rg->len < VM_GROW_MAX ? rg->len : VM_GROW_MAX;
    size_t want = rg->len + ahead > need ? rg->len + ahead : need;
    want = (want + VM_GROW_UNIT - 1) & ~(VM_GROW_UNIT - 1);
    // Under an address-space limit, nothing ahead: what the pool does not
    // use, the program's other mappings (thread stacks) may need.
    if (os_as_limit()) want = need = (upto + VM_GROW_LIMITED - 1) &
                                     ~(VM_GROW_LIMITED - 1);
    if (need > rg->cap) need = rg->cap;
    if (want > rg->cap) want = rg->cap;
    uintptr_t at = rg->base + rg->len, got;
    size_t exact = (upto + ((size_t)64 << 10) - 1) & ~(((size_t)64 << 10) - 1);
    r = os_reserve(at, want - rg->len, &got);
    if (r && want > need) r = os_reserve(at, (want = need) - rg->len, &got);
    // Under an address-space limit, what is needed to the 64 KiB.
    if (r == -ENOMEM && want > exact)
      r = os_reserve(at, (want = exact) - rg->len, &got);
    if (r == -EEXIST) {
      char occ[256];
      os_describe_mapping(at, need - rg->len, occ, sizeof occ);
      fmt_format(why, why_len, "its address range cannot grow past 0x%lx: "
                 "0x%lx-0x%lx is occupied by %s", (unsigned long)at,
                 (unsigned long)at, (unsigned long)(rg->base + need), occ);
      r = -ENOMEM;
    } else if (r == -ENOMEM) {
      refusal(why, why_len, at, need - rg->len);
    } else if (r) {
      fmt_format(why, why_len, "cannot reserve 0x%lx-0x%lx (errno %d)",
                 (unsigned long)at, (unsigned long)(rg->base + need), -r);
    } else {
      rg->len = want;
      table_set(rg->base, rg->len, rg->owner);
    }
  }
  if (rg) *reserved = rg->len;
  vmmap_unlock();
  return r;
}

// Runs op on [addr, addr+len) if an own range holds it.
#define OWNED_OP(addr, len, call)                                   \
  do {                                                              \
    vmmap_lock();                                                   \
    int r_ = owning(addr, len) ? (call) : -EFAULT;                  \
    vmmap_unlock();                                                 \
    if (r_ == -EFAULT)                                              \
      log_print(LOG_ERROR, "refused to map 0x%lx+%zu: not an own range", \
                (unsigned long)(addr), (size_t)(len));              \
    return r_;                                                      \
  } while (0)

int vmmap_commit(uintptr_t addr, size_t len) {
  OWNED_OP(addr, len, os_commit(addr, len));
}

int vmmap_map_file(uintptr_t addr, size_t len, int fd, uint64_t off,
                   int shared) {
  OWNED_OP(addr, len, os_map_file(addr, len, fd, off, shared));
}

int vmmap_purge(uintptr_t addr, size_t len) {
  OWNED_OP(addr, len, os_purge(addr, len));
}

int vmmap_advise_huge(uintptr_t addr, size_t len) {
  OWNED_OP(addr, len, os_advise_huge(addr, len));
}

int vmmap_purge_lazy(uintptr_t addr, size_t len) {
  OWNED_OP(addr, len, os_purge_lazy(addr, len));
}

int vmmap_sync(uintptr_t addr, size_t len) {
  OWNED_OP(addr, len, os_msync(addr, len));
}

// Unmaps the own range of this kind starting at base and forgets it (a
// pool's table entries too); -EFAULT when there is none.
static int release(int kind, uintptr_t base) {
  int r = -EFAULT;
  vmmap_lock();
  for (unsigned i = 0; i < VM_MAX_RANGES; i++) {
    struct vm_range *rg = &ranges[i];
    if (rg->kind == kind && rg->base == base) {
      if (kind == VR_POOL) table_set(rg->base, rg->len, 0);
      r = os_unmap(rg->base, rg->len);
      memset(rg, 0, sizeof *rg);
      break;
    }
  }
  vmmap_unlock();
  return r;
}

int vmmap_release(uintptr_t base) { return release(VR_POOL, base); }

// A committed read-write range of len bytes recorded as kind; NULL when no
// ledger slot or no memory is left.
static void *map_own(size_t len, int kind, const char *name) {
  uintptr_t got = 0;
  void *res = NULL;
  vmmap_lock();
  struct vm_range *slot = slot_free();
  if (slot && os_reserve(0, len, &got) == 0) {
    if (os_commit(got, len) == 0) {
      *slot = (struct vm_range){got, len, len, kind, 0};
      os_name_range(got, len, name);
      res = (void *)got;
    } else {
      os_unmap(got, len);
    }
  }
  vmmap_unlock();
  return res;
}

void *vmmap_internal(size_t len) {
  return map_own(len, VR_INTERNAL, "mmpool-internal");
}

void *vmmap_scratch(size_t len) {
  return map_own(len, VR_SCRATCH, "mmpool-scratch");
}

int vmmap_scratch_release(void *ptr) {
  return release(VR_SCRATCH, (uintptr_t)ptr);
}

int vmmap_view(int fd, size_t file_len, size_t len, int writable,
               uintptr_t *out) {
  vmmap_lock();
  struct vm_range *slot = slot_free();
  int r = slot ? os_map_copy(fd, file_len, len, writable, out) : -ENOMEM;
  if (!r) *slot = (struct vm_range){*out, len, len, VR_VIEW, 0};
  vmmap_unlock();
  return r;
}

int vmmap_view_release(uintptr_t addr) { return release(VR_VIEW, addr); }

// ---------------------------------------------------------------------------
// Fork children

int vmmap_copy_out(uintptr_t addr, size_t len, uintptr_t *copy) {
  int r = os_map_anon(len, copy);
  if (r) return r;
  vmmap_lock();
  if (owning(addr, len)) {
    memcpy((void *)*copy, (const void *)addr, len);
  } else {
    r = -EFAULT;
  }
  vmmap_unlock();
  if (r) os_unmap(*copy, len);
  return r;
}

int vmmap_copy_in(uintptr_t copy, size_t len, uintptr_t addr) {
  vmmap_lock();
  int r = owning(addr, len) ? os_move(copy, len, addr) : -EFAULT;
  vmmap_unlock();
  if (r) os_unmap(copy, len);
  return r;
}

void vmmap_copy_drop(uintptr_t copy, size_t len) { os_unmap(copy, len); }
