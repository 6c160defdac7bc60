// lock.c: the per-thread count of engine locks held (lock.h).
#include "lock.h"

__thread unsigned tl_locks;
