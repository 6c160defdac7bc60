// settings.c: the configuration the preload library runs on.
//
// Loaded once, by the first thread that allocates, before malloc works
// (config/ parses without allocating); read-only after. A configuration
// error is one line each on the log, and the program then runs on the
// built-in default (or stops, with MMPOOL_STRICT=1). A configured pool that
// cannot be opened is reported and left out (or stops the program, with
// MMPOOL_STRICT=1), except a file pool in use by another process, which is
// normal for a child that inherits the configuration (said quietly: see
// below); without its default pool the program runs on the built-in
// anonymous default.
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "fmt.h"
#include "log.h"
#include "os.h"
#include "shim.h"
#include "snapshot.h"

// The configuration: static, since it is read before malloc works.
struct mmpool_config shim_cfg;
static struct config_errors cfg_errs;
struct mmpool *shim_cfg_pool[CONFIG_MAX_POOLS];  // by config pool index
int shim_cfg_open_error[CONFIG_MAX_POOLS];        // errno of a failed open

// MMPOOL_RESTORE=PID:DIR (`mmpool run --from DIR`): each pool of the
// snapshot in DIR is opened from its image, privately (the snapshot is
// never written), in place of the configured pool of the same name, or as
// one more pool when the configuration has none of that name (reached
// through mmpool_get). The routes stay the configuration's.
static struct snap_manifest restore_m;  // 21 KiB: not on the stack
static int restoring;
static int restore_moved;  // pools moved (relocate=yes)
static int restore_copied; // restore_files holds the copies in use
static char restore_files[MMPOOL_MAX_POOLS][SNAP_FILE_MAX];
// The deltas applied at attach, by pool of the snapshot (snapshot_deltas).
static struct pool_deltas restore_deltas[MMPOOL_MAX_POOLS];
static char restore_names[MMPOOL_MAX_POOLS][SNAP_CHAIN_MAX][SNAP_FILE_MAX];

static int restore_apply(void) {
  struct snap_manifest *m = &restore_m;
  const char *dir = shim_cfg.restore_dir;
  int r = snapshot_read(dir, m);
  if (r) return r;
  if (strlen(dir) + 1 + SNAP_FILE_MAX >= SPEC_PATH_MAX)
    return log_fail(ENAMETOOLONG, "%s: path too long", dir);
  // Checked before anything changes: the pools the configuration lacks fit.
  // And relocate=yes on the configured pool of any name in the snapshot
  // moves the set where its ranges are taken (snapshot_relocated).
  unsigned more = 0;
  int relocate = 0, trust_any = 0;
  for (uint32_t i = 0; i < m->npools; i++) {
    unsigned k = 0;
    while (k < shim_cfg.npools && strcmp(shim_cfg.pools[k].name,
                                         m->pool[i].name))
      k++;
    if (k == shim_cfg.npools) {
      more++;
    } else {
      relocate |= shim_cfg.pools[k].spec.relocate;
      trust_any |= shim_cfg.pools[k].spec.trust == SPEC_TRUST_ANY;
    }
  }
  if (shim_cfg.npools + more > CONFIG_MAX_POOLS)
    return log_fail(ENOSPC, "%s: %u pools more than the configuration's "
                    "%u do not fit (at most %u)", dir, more, shim_cfg.npools,
                    (unsigned)CONFIG_MAX_POOLS);
  // Copies: of the set, moved, where ranges are taken (relocate); of the
  // images whose deltas attach cannot apply (else they are, below).
  {
    uint64_t changed = 0;
    int mv = snapshot_relocated(dir, m, relocate, trust_any, restore_files,
                                &changed);
    if (mv < 0) return mv;
    restore_moved = mv > 0;
    restore_copied = 1;
    if (mv > 0)
      log_print(LOG_INFO, "MMPOOL_RESTORE: %s: %d pools moved (their "
                "ranges were taken), %llu words changed", dir, mv,
                (unsigned long long)changed);
  }
  for (uint32_t i = 0; i < m->npools; i++) {
    const struct snap_entry *e = &m->pool[i];
    unsigned k = 0;
    while (k < shim_cfg.npools && strcmp(shim_cfg.pools[k].name, e->name))
      k++;
    if (k == shim_cfg.npools) {
      struct config_pool *cp = &shim_cfg.pools[shim_cfg.npools++];
      char why[8];
      memcpy(cp->name, e->name, sizeof cp->name);
      cp->implicit = 0;
      spec_parse(NULL, &cp->spec, why, sizeof why);
      cp->spec.full = SPEC_FULL_NULL;
    }
    struct pool_spec *sp = &shim_cfg.pools[k].spec;
    fmt_format(sp->path, sizeof sp->path, "%s/%s", dir,
               restore_files[i][0] ? restore_files[i] : e->file);
    sp->file = 1;
    sp->mode = SPEC_PRIVATE;
    sp->mode_set = 1;
    sp->size_set = 0;  // the image's
    sp->size = SPEC_DEFAULT_SIZE;
    sp->base = 0;      // the image's
    sp->recover = 0;
    sp->deltas = NULL;
    if (!restore_files[i][0] && m->chain[i].n) {
      snapshot_deltas(dir, m, i, &restore_deltas[i], restore_names[i]);
      sp->deltas = &restore_deltas[i];
    }
    shim_cfg.pools[k].implicit = 0;
  }
  log_print(LOG_INFO, "restoring %u pools from the snapshot %llu in %s",
            m->npools, (unsigned long long)m->serial, dir);
  restoring = 1;
  return 0;
}

// After the open of configured pool i: when it comes from the snapshot, is
// its image the one the manifest names? 0, or -EUCLEAN (said).
static int restore_check(unsigned i, struct mmpool *p) {
  if (!restoring) return 0;
  for (uint32_t k = 0; k < restore_m.npools; k++)
    if (!strcmp(restore_m.pool[k].name, shim_cfg.pools[i].name))
      return snapshot_entry_check(&restore_m.pool[k], p, restore_moved);
  return 0;
}

void settings_load(void) {
  extern char **environ;
  log_open_sink();
  int r = config_load(&shim_cfg, environ, &cfg_errs);
  log_set_level(shim_cfg.log_level);
  for (unsigned i = 0; i < cfg_errs.count; i++)
    log_print(LOG_ERROR, "%s", cfg_errs.line[i]);
  if (cfg_errs.total > cfg_errs.count)
    log_print(LOG_ERROR, "%u more configuration errors",
              cfg_errs.total - cfg_errs.count);
  if (r == -EINVAL) {
    log_print(LOG_ERROR, "MMPOOL_STRICT is set: stopping");
    _exit(127);
  }
  if (shim_cfg.fallback)
    log_print(LOG_WARN, "running on the default configuration (one "
              "anonymous pool) because of the errors above");
  if (shim_cfg.restore_pid && shim_cfg.restore_pid == os_getpid() &&
      restore_apply() != 0) {
    log_print(LOG_ERROR, "MMPOOL_RESTORE: %s: the program starts without "
              "its snapshot", log_last_error());
    if (shim_cfg.strict) {
      log_print(LOG_ERROR, "MMPOOL_STRICT is set: stopping");
      _exit(127);
    }
  }
  struct mmpool *def = NULL;
  unsigned failed = 0;
  for (unsigned i = 0; i < shim_cfg.npools; i++) {
    struct mmpool *p = NULL;
    int r = pool_open(shim_cfg.pools[i].name, &shim_cfg.pools[i].spec, &p);
    if (r != 0) {
      // A file pool held by another process is what a configuration that
      // children inherit makes normal (the parent holds it): said at
      // MMPOOL_LOG=info and in the MMPOOL_STATS report, not as an error,
      // and MMPOOL_STRICT does not stop for it.
      shim_cfg_open_error[i] = -r;
      log_print(r == -EBUSY ? LOG_INFO : LOG_ERROR, "%s", log_last_error());
      if (r != -EBUSY) failed++;
      continue;
    }
    if (restore_check(i, p)) {
      log_print(LOG_ERROR, "%s", log_last_error());
      pool_close(p);
      shim_cfg_open_error[i] = EUCLEAN;
      failed++;
      continue;
    }
    shim_cfg_pool[i] = p;
    if (i == shim_cfg.default_pool) def = p;
  }
  if (restore_copied)
    snapshot_relocated_drop(shim_cfg.restore_dir, restore_m.npools,
                            restore_files);
  // A pool that cannot be opened is a configuration error that only shows
  // now: under MMPOOL_STRICT it stops the program too.
  if (failed && shim_cfg.strict) {
    log_print(LOG_ERROR, "MMPOOL_STRICT is set: stopping");
    _exit(127);
  }
  if (def) pool_set_default(def);
  if (log_level() >= LOG_INFO) {
    char buf[4096];
    size_t n = config_describe(&shim_cfg, buf, sizeof buf);
    for (char *line = buf, *end; line < buf + n && *line; line = end + 1) {
      end = line;
      while (*end && *end != '\n') end++;
      log_print(LOG_INFO, "config: %.*s", (int)(end - line), line);
      if (!*end) break;
    }
  }
}
