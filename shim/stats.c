// stats.c: the MMPOOL_STATS=1 report at exit. Not written yet.
#include "log.h"
#include "shim.h"

void shim_stats_start(void) {
  log_print(LOG_WARN, "MMPOOL_STATS: the report is not implemented yet");
}
