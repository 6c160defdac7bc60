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
#include <unistd.h>

#include "log.h"
#include "shim.h"

// The configuration: static, since it is read before malloc works.
struct mmpool_config shim_cfg;
static struct config_errors cfg_errs;
struct mmpool *shim_cfg_pool[CONFIG_MAX_POOLS];  // by config pool index
int shim_cfg_open_error[CONFIG_MAX_POOLS];        // errno of a failed open

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
    shim_cfg_pool[i] = p;
    if (i == shim_cfg.default_pool) def = p;
  }
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
