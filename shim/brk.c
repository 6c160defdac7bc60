// brk.c: the emulated program break (sbrk/brk). Not written yet: the
// program keeps the kernel's break through glibc's own sbrk and brk.
#include "shim.h"

void shim_brk_init(void) {}
