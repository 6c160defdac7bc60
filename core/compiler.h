// compiler.h: branch hints and symbol visibility, a leaf of the engine.
#ifndef MMPOOL_COMPILER_H
#define MMPOOL_COMPILER_H

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
// Internal symbols shared between files of one library, never exported
// (the build also defaults to hidden; this keeps TLS and data references
// direct when a header is compiled into another target).
#define HIDDEN __attribute__((visibility("hidden")))

#endif
