// spec.c: parser of the words of a pool statement (see spec.h).
#include "fmt.h"
#include "spec.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

#include "compiler.h"
#include "log.h"
#include "poolfile.h"

RARE int spec_parse_size(const char *s, size_t len, uint64_t *out) {
  uint64_t v = 0;
  size_t i = 0;
  int hex = len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
  if (hex) i = 2;
  if (i >= len) return -EINVAL;
  size_t digits = 0;
  for (; i < len; i++, digits++) {
    char c = s[i];
    unsigned d;
    if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
    else if (hex && c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
    else if (hex && c >= 'A' && c <= 'F') d = (unsigned)(c - 'A' + 10);
    else break;
    unsigned radix = hex ? 16 : 10;
    if (v > (UINT64_MAX - d) / radix) return -ERANGE;
    v = v * radix + d;
  }
  if (digits == 0) return -EINVAL;
  if (i < len) {
    if (hex || i + 1 != len) return -EINVAL;
    unsigned shift;
    switch (s[i]) {
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    case 't': case 'T': shift = 40; break;
    default: return -EINVAL;
    }
    if (v > (UINT64_MAX >> shift)) return -ERANGE;
    v <<= shift;
  }
  *out = v;
  return 0;
}

static int is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// Compares a word's key (up to '=' or its end) with name.
static int key_is(const char *w, size_t keylen, const char *name) {
  return strlen(name) == keylen && memcmp(w, name, keylen) == 0;
}

#define BAD(...) (fmt_format(why, why_len, __VA_ARGS__), -EINVAL)

static const struct {
  const char *name;
  int sig;
} snap_signals[] = {{"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"HUP", SIGHUP}};

int spec_signal_number(const char *name, size_t len) {
  if (len > 3 && !memcmp(name, "SIG", 3)) name += 3, len -= 3;
  for (unsigned i = 0; i < sizeof snap_signals / sizeof *snap_signals; i++)
    if (strlen(snap_signals[i].name) == len &&
        !memcmp(snap_signals[i].name, name, len))
      return snap_signals[i].sig;
  return 0;
}

const char *spec_signal_name(int sig) {
  for (unsigned i = 0; i < sizeof snap_signals / sizeof *snap_signals; i++)
    if (snap_signals[i].sig == sig) return snap_signals[i].name;
  return "?";
}

// snapshot-on=exit,signal:USR2,interval:30s (any of the three, each once).
static int parse_snap_on(const char *v, size_t vl, struct pool_spec *sp,
                         char *why, size_t why_len) {
  const char *end = v + vl;
  while (v < end) {
    const char *e = v;
    while (e < end && *e != ',') e++;
    size_t n = (size_t)(e - v);
    int ni = (int)(n > 60 ? 60 : n);
    unsigned bit;
    if (n == 4 && !memcmp(v, "exit", 4)) {
      bit = SPEC_SNAP_ON_EXIT;
    } else if (n > 7 && !memcmp(v, "signal:", 7)) {
      bit = SPEC_SNAP_ON_SIGNAL;
      sp->snap_signal = spec_signal_number(v + 7, n - 7);
      if (!sp->snap_signal)
        return BAD("snapshot-on: bad signal in '%.*s' (USR1, USR2 or HUP)",
                   ni, v);
    } else if (n > 9 && !memcmp(v, "interval:", 9)) {
      bit = SPEC_SNAP_ON_INTERVAL;
      const char *d = v + 9;
      size_t dl = n - 9;
      uint64_t mult = 1;
      char u = d[dl - 1];
      if (u == 's' || u == 'm' || u == 'h') {
        mult = u == 's' ? 1 : u == 'm' ? 60 : 3600;
        dl--;
      }
      uint64_t secs = 0;
      for (size_t k = 0; k < dl; k++) {
        if (d[k] < '0' || d[k] > '9' || secs > 1000000)
          return BAD("snapshot-on: bad interval in '%.*s' (like 30s, 5m or "
                     "1h)", ni, v);
        secs = secs * 10 + (uint64_t)(d[k] - '0');
      }
      secs *= mult;
      if (dl == 0 || secs < 1 || secs > 7 * 86400)
        return BAD("snapshot-on: interval out of range in '%.*s' (1s to "
                   "7 days)", ni, v);
      sp->snap_interval = (uint32_t)secs;
    } else {
      return BAD("snapshot-on: unknown event '%.*s' (exit, signal:SIG or "
                 "interval:TIME)", ni, v);
    }
    if (sp->snap_on & bit)
      return BAD("snapshot-on: '%.*s' given twice", ni, v);
    sp->snap_on |= bit;
    v = e < end ? e + 1 : e;
    if (e < end && v == end)
      return BAD("snapshot-on: empty event at the end");
  }
  return 0;
}

int spec_parse(const char *words, struct pool_spec *sp, char *why,
               size_t why_len) {
  memset(sp, 0, sizeof *sp);
  sp->size = SPEC_DEFAULT_SIZE;
  unsigned seen = 0;  // one bit per option, to refuse duplicates
  const char *p = words ? words : "";
  for (;;) {
    while (is_blank(*p)) p++;
    if (!*p) break;
    const char *w = p;
    while (*p && !is_blank(*p)) p++;
    size_t wl = (size_t)(p - w), kl = 0;
    while (kl < wl && w[kl] != '=') kl++;
    const char *v = kl < wl ? w + kl + 1 : NULL;
    size_t vl = v ? wl - kl - 1 : 0;
    int wi = (int)(wl > 200 ? 200 : wl);  // for messages
    static const char *const names[] = {"anon",     "file", "mode", "size",
                                        "base",     "relocate", "full",
                                        "brk",      "recover", "trust",
                                        "snapshot", "snapshot-on", "thp",
                                        "snapshot-incremental"};
    unsigned opt = 0;
    while (opt < sizeof names / sizeof *names && !key_is(w, kl, names[opt]))
      opt++;
    if (opt == sizeof names / sizeof *names)
      return BAD("unknown option '%.*s'", wi, w);
    int flag = opt == 0 || opt == 7 || opt == 8;  // anon, brk, recover
    if (flag && v) return BAD("option '%.*s' takes no value", wi, w);
    if (!flag && (!v || vl == 0))
      return BAD("option '%.*s' needs a value (%s=...)", wi, w, names[opt]);
    if (seen & (1u << opt) || (opt <= 1 && seen & 3u))
      return BAD("option '%.*s' given twice (or both anon and file)", wi, w);
    seen |= 1u << opt;
    switch (opt) {
    case 0: break;
    case 1:
      if (vl >= SPEC_PATH_MAX) return BAD("file path too long in '%.20s...'", w);
      memcpy(sp->path, v, vl);
      sp->path[vl] = 0;
      sp->file = 1;
      break;
    case 2:
      if (vl == 6 && !memcmp(v, "shared", 6)) sp->mode = SPEC_SHARED;
      else if (vl == 7 && !memcmp(v, "private", 7)) sp->mode = SPEC_PRIVATE;
      else return BAD("bad mode in '%.*s' (shared or private)", wi, w);
      sp->mode_set = 1;
      break;
    case 3: {
      int r = spec_parse_size(v, vl, &sp->size);
      if (r == -ERANGE) return BAD("size too large in '%.*s'", wi, w);
      if (r) return BAD("bad size in '%.*s' (digits with K, M, G or T)", wi, w);
      if (sp->size < POOL_MIN_CAPACITY || sp->size > POOL_MAX_CAPACITY)
        return BAD("size out of range in '%.*s' (1M to 16T)", wi, w);
      sp->size_set = 1;
      break;
    }
    case 4:
      if (vl == 4 && !memcmp(v, "auto", 4)) {
        sp->base = 0;
        break;
      }
      if (spec_parse_size(v, vl, &sp->base) || sp->base == 0)
        return BAD("bad address in '%.*s' (0x... or auto)", wi, w);
      if (sp->base % POOL_BASE_ALIGN)
        return BAD("base in '%.*s' is not a multiple of 1 GiB (0x40000000)",
                   wi, w);
      if (sp->base >= POOL_USER_ADDR_END)
        return BAD("base in '%.*s' is above the user address space", wi, w);
      break;
    case 5:
      if (vl == 2 && !memcmp(v, "no", 2)) sp->relocate = 0;
      else if (vl == 3 && !memcmp(v, "yes", 3)) sp->relocate = 1;
      else return BAD("bad value in '%.*s' (no or yes)", wi, w);
      break;
    case 6:
      if (vl == 8 && !memcmp(v, "fallback", 8)) sp->full = SPEC_FULL_FALLBACK;
      else if (vl == 4 && !memcmp(v, "null", 4)) sp->full = SPEC_FULL_NULL;
      else if (vl == 5 && !memcmp(v, "abort", 5)) sp->full = SPEC_FULL_ABORT;
      else return BAD("bad value in '%.*s' (fallback, null or abort)", wi, w);
      break;
    case 7: sp->brk = 1; break;
    case 8: sp->recover = 1; break;
    case 9:
      if (vl == 5 && !memcmp(v, "owner", 5)) sp->trust = SPEC_TRUST_OWNER;
      else if (vl == 3 && !memcmp(v, "any", 3)) sp->trust = SPEC_TRUST_ANY;
      else return BAD("bad value in '%.*s' (owner or any)", wi, w);
      break;
    case 10:
      if (vl >= SPEC_PATH_MAX)
        return BAD("directory path too long in '%.20s...'", w);
      memcpy(sp->snap_dir, v, vl);
      sp->snap_dir[vl] = 0;
      break;
    case 11: {
      int r = parse_snap_on(v, vl, sp, why, why_len);
      if (r) return r;
      break;
    }
    case 12:
      if (vl == 3 && !memcmp(v, "yes", 3)) sp->thp = 1;
      else if (vl == 2 && !memcmp(v, "no", 2)) sp->thp = 0;
      else return BAD("bad value in '%.*s' (yes or no)", wi, w);
      sp->thp_set = 1;
      break;
    case 13:
      if (vl == 3 && !memcmp(v, "yes", 3)) sp->snap_full = 0;
      else if (vl == 2 && !memcmp(v, "no", 2)) sp->snap_full = 1;
      else return BAD("bad value in '%.*s' (yes or no)", wi, w);
      break;
    }
  }
  if (sp->snap_on && !sp->snap_dir[0])
    return BAD("option 'snapshot-on' needs snapshot=DIR");
  if (seen & (1u << 13) && !sp->snap_dir[0])
    return BAD("option 'snapshot-incremental' needs snapshot=DIR");
  if (sp->snap_dir[0] && !sp->snap_on) sp->snap_on = SPEC_SNAP_ON_EXIT;
  if (sp->mode_set && !sp->file)
    return BAD("option 'mode' applies to file pools only (add file=PATH)");
  if (sp->recover && !sp->file)
    return BAD("option 'recover' applies to file pools only (add file=PATH)");
  if (seen & (1u << 9) && !sp->file)
    return BAD("option 'trust' applies to file pools only (add file=PATH)");
  if (sp->base && sp->size > POOL_USER_ADDR_END - sp->base)
    return BAD("base 0x%llx plus size %llu passes the end of the user "
               "address space", (unsigned long long)sp->base,
               (unsigned long long)sp->size);
  return 0;
}
