// fmt.h: a printf-like formatter that never allocates, a leaf of the engine.
//
// It writes into caller buffers only, so messages can be built inside
// malloc, before the engine is initialised, in a fork child, in a signal
// handler and from exit handlers, where stdio cannot be used.
#ifndef MMPOOL_FMT_H
#define MMPOOL_FMT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

// Formats into buf (always NUL-terminated when n > 0) and returns the length
// written. Conversions: %s %c %d %u %ld %lu %lld %llu %zu %zd %x %lx %llx
// %zx %o (octal: file modes) %p %%, with an optional '0' flag and width for
// numbers (e.g. %016lx, %04o), and a precision for strings (%.20s, %.*s).
size_t fmt_vformat(char *buf, size_t n, const char *fmt, va_list ap);
size_t fmt_format(char *buf, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Copies the len bytes of src into buf (NUL-terminated when n > 0) with
// every control byte (below 0x20, and 0x7f) written as \xNN, so that text
// from a user, a file or the environment that a message quotes cannot
// drive the terminal it is shown on (ESC sequences) or forge a line. An
// escape is never cut by the end of buf. Returns the length written.
size_t fmt_escape(char *buf, size_t n, const char *src, size_t len);

// A byte count in words: "64 GiB", "3 MiB", or in KiB when it is no whole
// number of MiB.
void fmt_size(char *out, size_t outlen, uint64_t n);

#endif
