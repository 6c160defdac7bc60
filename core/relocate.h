// relocate.h: moving pool images to other base addresses (SBCL's way).
//
// A pool's metadata is offsets, so moving it needs its header's base and
// what the program stored: pointers. Relocation is conservative: every
// aligned 8-byte word of every block handed out (slab blocks, free or live,
// but a free block's list link, which is an offset; large blocks up to
// their requested size) and every root that lies in the old range of any
// pool of the set is moved by that pool's displacement. A free block's
// free mark (its slab descriptor's address) is such a word and moves with
// it. An integer that happens to look like an address in the set changes
// too: the report counts the words changed. Nothing else is read or
// written (descriptors, slack arrays and free spans stay as they are), so
// the metadata checksum of a clean image stays valid.
//
// The input is an image read through inspect (a view at any address,
// checked by the strict walk before anything is written); the output is
// written to a file descriptor, so the original stays intact until the
// caller renames the copy over it.
#ifndef MMPOOL_RELOCATE_H
#define MMPOOL_RELOCATE_H

#include <stddef.h>
#include <stdint.h>

#include "compiler.h"
#include "inspect.h"

// One pool of the set: words in [old_base, old_end) move by
// new_base - old_base.
struct reloc_range {
  uint64_t old_base, old_end, new_base;
};

// Checks that image in may move to new_base (1 GiB aligned, in the user
// address range, its capacity fitting, a multiple of its align_max away,
// clean, sound by the strict walk): 0, or a negative errno with one line
// in why.
int reloc_check(struct inspect *in, uint64_t new_base, char *why,
                size_t why_len) HIDDEN;

// Writes image in, moved to new_base, to fd (truncated to its length, free
// spans left as holes), and fsyncs it when durable (a copy to keep, not a
// temporary one). set: every pool of the set, this one
// included. *changed: words (roots included) that were moved. 0, or a
// negative errno with one line in why. pre: reloc_check passed.
int reloc_write(struct inspect *in, const struct reloc_range *set,
                unsigned nset, uint64_t new_base, int fd, int durable,
                uint64_t *changed, char *why, size_t why_len) HIDDEN;

#endif
