// compiler.h: branch hints and symbol visibility, a leaf of the engine.
#ifndef MMPOOL_COMPILER_H
#define MMPOOL_COMPILER_H

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
// Internal symbols shared between files of one library, never exported
// (the build also defaults to hidden; this keeps TLS and data references
// direct when a header is compiled into another target).
#define HIDDEN __attribute__((visibility("hidden")))
// Code that most programs never run (the snapshot writer, checks and walks,
// the config file parser, reports, error paths), in a section of its own
// that no pattern of the linker's script names: the linker puts it after
// .text, at the end of the code. The kernel maps a library's cached file
// pages 64 KiB around each fault, clamped to the mapping, so the code that
// every program runs, kept together at the start of .text, makes about its
// own size resident, not all 180 KiB (docs/performance.md, "The library's
// own memory"). Only the placement changes, not the code: unlike the cold
// attribute, no size optimisation, no effect on the callers' branches.
#define RARE __attribute__((section(".text_rare")))

#endif
