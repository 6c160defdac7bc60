// got.c: the shortcut of lib= routes. A module calls malloc and calloc
// through its PLT, which jumps to the address held in the module's GOT slot
// for that symbol. When the slot holds this library's malloc (the loader
// bound it here), it is pointed instead at the entry point made for the
// module's class (module.h: the set of lib= routes its name matches), which
// reads that class's routing table directly: the module's calls skip the
// return-address lookup of the exported malloc. Everything else keeps the
// exported functions, which route by the return address; so a slot left
// alone is slower, never wrong. Left alone are:
//   - slots not bound here (the module has its own malloc, or binds
//     elsewhere): they are not ours to change;
//   - slots not bound yet (lazy binding): got_patch reports them, and
//     module.c patches the module again when it first meets a call from it
//     (which the loader bound on the way);
//   - slots inside the module's RELRO segment (linked with -z now): the
//     loader made that memory read-only, and it may still be relocating the
//     module when we see it, so its protection is not touched;
//   - the executable's slot for a function whose address it takes (non-PIE:
//     the PLT entry is then the function's address for every module, so
//     other modules' calls would take the executable's class);
//   - calls that do not go through a JUMP_SLOT (-fno-plt code, the C
//     library's own calls to malloc, function pointers, dlsym): they reach
//     the exported functions. A GLOB_DAT slot is also the value of the
//     function's address in that module, which must stay the same in every
//     module.
//
// A slot is one aligned pointer: a thread calling through it meanwhile jumps
// to the old entry or the new one, both right. Runs inside a dl_iterate_phdr
// callback, under the loader's lock, so the module cannot be unloaded
// underneath; allocates nothing.
#define _GNU_SOURCE
#include <elf.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>

#include "got.h"
#include "log.h"

#if defined(__x86_64__)
#define GOT_JUMP_SLOT R_X86_64_JUMP_SLOT
#elif defined(__aarch64__)
#define GOT_JUMP_SLOT R_AARCH64_JUMP_SLOT
#endif

#ifdef GOT_JUMP_SLOT

// The functions whose slots are patched: which entry table serves them.
static int target(const char *name, const struct got_entries *e,
                  void *const **entries, void **exported) {
  if (strcmp(name, "malloc") == 0) {
    *entries = e->malloc_entry, *exported = e->malloc_exported;
    return 1;
  }
  if (strcmp(name, "calloc") == 0) {
    *entries = e->calloc_entry, *exported = e->calloc_exported;
    return 1;
  }
  return 0;
}

// A pointer of the dynamic section: the loader relocates most of them in
// place, but not in a read-only dynamic section (the vDSO's).
static uintptr_t dyn_ptr(const struct dl_phdr_info *info, ElfW(Addr) v) {
  return v < info->dlpi_addr ? info->dlpi_addr + v : v;
}

static int in_load(const struct dl_phdr_info *info, uintptr_t a) {
  for (unsigned i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
    if (ph->p_type == PT_LOAD && a >= lo && a - lo < ph->p_memsz) return 1;
  }
  return 0;
}

RARE int got_patch(const struct dl_phdr_info *info, const char *name,
                   unsigned cls, const struct got_entries *e) {
  if (cls >= GOT_CLASSES || !e) return 0;
  if (in_load(info, (uintptr_t)got_patch)) return 0; // this library
  const ElfW(Dyn) *dyn = NULL;
  uintptr_t relro_lo = 0, relro_hi = 0;
  for (unsigned i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type == PT_DYNAMIC)
      dyn = (const ElfW(Dyn) *)(info->dlpi_addr + ph->p_vaddr);
    if (ph->p_type == PT_GNU_RELRO) {
      relro_lo = info->dlpi_addr + ph->p_vaddr;
      relro_hi = relro_lo + ph->p_memsz;
    }
  }
  if (!dyn) return 0;
  uintptr_t jmprel = 0, symtab = 0, strtab = 0;
  size_t pltrelsz = 0;
  ElfW(Sxword) pltrel = 0;
  for (; dyn->d_tag != DT_NULL; dyn++) {
    switch (dyn->d_tag) {
    case DT_JMPREL: jmprel = dyn_ptr(info, dyn->d_un.d_ptr); break;
    case DT_PLTRELSZ: pltrelsz = dyn->d_un.d_val; break;
    case DT_PLTREL: pltrel = dyn->d_un.d_val; break;
    case DT_SYMTAB: symtab = dyn_ptr(info, dyn->d_un.d_ptr); break;
    case DT_STRTAB: strtab = dyn_ptr(info, dyn->d_un.d_ptr); break;
    }
  }
  if (!jmprel || !symtab || !strtab || pltrel != DT_RELA) return 0;
  const ElfW(Rela) *rel = (const ElfW(Rela) *)jmprel;
  const ElfW(Sym) *sym = (const ElfW(Sym) *)symtab;
  int unbound = 0;
  for (size_t i = 0; i < pltrelsz / sizeof *rel; i++) {
    if (ELF64_R_TYPE(rel[i].r_info) != GOT_JUMP_SLOT) continue;
    const ElfW(Sym) *s = &sym[ELF64_R_SYM(rel[i].r_info)];
    const char *fn = (const char *)strtab + s->st_name;
    void *const *entries;
    void *exported;
    if (!target(fn, e, &entries, &exported)) continue;
    // An undefined symbol with a value: the executable's PLT entry is the
    // function's address (see above). (A defined one is the module's own
    // function, which the loader bound here all the same.)
    if (s->st_shndx == SHN_UNDEF && s->st_value != 0) continue;
    uintptr_t slot = info->dlpi_addr + rel[i].r_offset;
    if (slot >= relro_lo && slot < relro_hi) continue;
    void **p = (void **)slot;
    void *cur = __atomic_load_n(p, __ATOMIC_RELAXED);
    if (cur == entries[cls]) continue;
    if (cur != exported) {
      // Bound nowhere yet: the lazy stub of the module's own PLT.
      if (in_load(info, (uintptr_t)cur)) unbound = 1;
      continue;
    }
    __atomic_store_n(p, entries[cls], __ATOMIC_RELEASE);
    log_print(LOG_DEBUG, "lib= routes: %s calls %s through the entry of "
              "class %u", name, fn, cls);
  }
  return unbound;
}

#else // no JUMP_SLOT relocation known for this machine: never patch

int got_patch(const struct dl_phdr_info *info, const char *name,
              unsigned cls, const struct got_entries *e) {
  (void)info, (void)name, (void)cls, (void)e;
  return 0;
}

#endif
