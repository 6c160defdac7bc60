// log.h: messages without allocation.
//
// The log and error paths format with fmt.h into fixed buffers only: they
// can run inside malloc, before the engine is initialised, in a fork child
// and from exit handlers.
// Every line the library prints starts with "mmpool: ".
#ifndef MMPOOL_LOG_H
#define MMPOOL_LOG_H

#include <stddef.h>

enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

// Where log lines go (default: fd 2, while it is the file it was when
// log_open_sink ran; see log.c) and how much.
void log_set_fd(int fd);
// Records which file fd 2 is now (the preload library does so at start,
// before the program can close or reuse fd 2). Opens no descriptor.
void log_open_sink(void);
void log_set_level(int level);
int log_level(void);

// Prints "mmpool: <message>\n" when level <= the current level.
void log_print(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

// Records the calling thread's last error ("" until the first) and its code,
// and returns -err, so failure paths read `return log_fail(EINVAL, ...)`.
int log_fail(int err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *log_last_error(void);
// The code of the last log_fail of this thread since the previous call
// (0 if none), which clears it: callers take it before and after an
// operation whose deep failure paths decide the errno.
int log_take_code(void);

// One line on the log, then abort(): heap corruption and broken invariants.
_Noreturn void log_fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

#endif
