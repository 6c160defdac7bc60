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

enum { VR_FREE = 0, VR_POOL = 1, VR_INTERNAL = 2, VR_SCRATCH = 3 };

struct vm_range {
  uintptr_t base;
  size_t len;
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

int vmmap_reserve_pool(unsigned id, uintptr_t base, size_t len,
                       uintptr_t *out, char *why, size_t why_len) {
  int r = -ENOMEM;
  uintptr_t got = 0;
  vmmap_lock();
  struct vm_range *slot = slot_free();
  if (!slot) {
    fmt_format(why, why_len, "too many mapped ranges (%d)", VM_MAX_RANGES);
    goto out;
  }
  if (base) {
    r = os_reserve(base, len, &got);
    if (r == -EEXIST) {
      char occ[256];
      os_describe_mapping(base, len, occ, sizeof occ);
      fmt_format(why, why_len,
                 "the range 0x%lx-0x%lx is occupied by %s", (unsigned long)base,
                 (unsigned long)(base + len), occ);
    } else if (r) {
      char eb[32];
      fmt_format(why, why_len, "cannot reserve 0x%lx-0x%lx (%s)",
                 (unsigned long)base, (unsigned long)(base + len),
                 os_strerror(-r, eb, sizeof eb));
    }
  } else {
    // Walk the window in GiB steps from where the last search stopped;
    // whole GiBs, so that no other pool shares a table entry with this one.
    size_t step = gib_round(len);
    uintptr_t start = auto_cursor, a = start;
    r = -ENOMEM;
    for (int wrapped = 0;;) {
      if (a + step > VM_AUTO_END) {
        if (wrapped) break;
        wrapped = 1;
        a = VM_AUTO_START;
      }
      if (wrapped && a >= start) break;
      unsigned busy = 0;
      for (uintptr_t g = a; g < a + step; g += (uintptr_t)1 << VM_TABLE_SHIFT)
        busy |= vm_table[(g >> VM_TABLE_SHIFT) & (VM_TABLE_SIZE - 1)];
      if (!busy && (r = os_reserve(a, len, &got)) == 0) break;
      a += (uintptr_t)1 << VM_TABLE_SHIFT;
    }
    if (r) {
      fmt_format(why, why_len,
                 "no free %zu-byte range in 0x%lx-0x%lx for base=auto", len,
                 (unsigned long)VM_AUTO_START, (unsigned long)VM_AUTO_END);
    } else {
      auto_cursor = got + step;
    }
  }
  if (r == 0) {
    *slot = (struct vm_range){got, len, VR_POOL, id};
    table_set(got, len, id);
    *out = got;
  }
out:
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
      *slot = (struct vm_range){got, len, kind, 0};
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
