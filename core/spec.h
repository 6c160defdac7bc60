// spec.h: the words of a `pool` statement, parsed into a plain struct.
//
// Shared by the control API (mmpool_open's options) and config/ (the pool
// statements of MMPOOL_CONFIG), so both accept exactly the same words.
// Parsing has no side effects and never allocates.
#ifndef MMPOOL_SPEC_H
#define MMPOOL_SPEC_H

#include <stddef.h>
#include <stdint.h>

#define SPEC_PATH_MAX 4096

enum spec_mode { SPEC_SHARED = 0, SPEC_PRIVATE = 1 };
// Whose pool files are attached: the effective user's only (the default),
// or any owner's (trust=any). A file others may write is refused either way.
enum spec_trust { SPEC_TRUST_OWNER = 0, SPEC_TRUST_ANY = 1 };
enum spec_full { SPEC_FULL_FALLBACK = 0, SPEC_FULL_NULL = 1,
                 SPEC_FULL_ABORT = 2 };

#define SPEC_DEFAULT_SIZE ((uint64_t)64 << 30)

// A snapshot's chain of deltas, applied to the file at attach (core/delta.h;
// mode=private only, the files' lengths never shrinking along it): the
// files dir/names[0..n), in order. Set by a restore, never by the words.
#define SPEC_DELTAS_MAX 16
struct pool_deltas {
  const char *dir;
  uint32_t n;
  const char *names[SPEC_DELTAS_MAX];
};

struct pool_spec {
  int file;                   // file=PATH given (else anonymous)
  char path[SPEC_PATH_MAX];   // file path
  int mode;                   // spec_mode
  int mode_set;
  uint64_t size;              // capacity; SPEC_DEFAULT_SIZE unless size_set
  int size_set;
  uint64_t base;              // 0 = auto
  int relocate;               // relocate=yes
  int full;                   // spec_full
  int brk;                    // serves sbrk/brk
  int recover;                // attach a file not closed cleanly
  int trust;                  // spec_trust
  int thp, thp_set;           // thp=yes|no: transparent huge pages
  // Snapshots (the preload library takes them; docs/snapshots.md): the
  // directory, and when. A snapshot is of every pool of the process.
  char snap_dir[SPEC_PATH_MAX]; // snapshot=DIR ("" when not given)
  unsigned snap_on;             // SPEC_SNAP_ON_* of snapshot-on=
  int snap_signal;              // signal:NAME
  uint32_t snap_interval;       // interval:N, seconds
  int snap_full;                // snapshot-incremental=no: every one whole
  const struct pool_deltas *deltas;  // NULL but in a restore (above)
};

enum { SPEC_SNAP_ON_EXIT = 1, SPEC_SNAP_ON_SIGNAL = 2,
       SPEC_SNAP_ON_INTERVAL = 4 };
// The signals snapshot-on= accepts, by name (without "SIG"), and back.
int spec_signal_number(const char *name, size_t len);
const char *spec_signal_name(int sig);

// Parses blank-separated words (NULL or "" gives the defaults). Returns 0, or
// -EINVAL with a one-line reason naming the word at fault in why.
int spec_parse(const char *words, struct pool_spec *out, char *why,
               size_t why_len);

// A size: decimal digits with an optional K, M, G or T suffix (powers of
// 1024), or 0x-prefixed hexadecimal. Returns 0, or -EINVAL (malformed) or
// -ERANGE (overflows 64 bits).
int spec_parse_size(const char *s, size_t len, uint64_t *out);

#endif
