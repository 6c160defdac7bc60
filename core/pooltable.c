// pooltable.c: the table of open pools (pooltable.h). Its entries are
// zero (closed) until pool.c opens them.
#include "pooltable.h"

struct mmpool pool_table[MMPOOL_MAX_POOLS + 1];
