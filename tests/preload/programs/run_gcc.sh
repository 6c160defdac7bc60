#!/usr/bin/env bash
# gcc under the shim (the driver, cc1, as, collect2 and ld all inherit it):
# compiles a generated C file at -O2 with debug information, links it, and
# runs the program. Compared: the object file and the executable byte for
# byte (gcc is deterministic; the paths are mapped away), the assembly, and
# the program's output. See lib.sh for the comparison.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
prog_init "$@"
need /usr/bin/gcc awk

# The source, generated once (no shim): many functions of integer and
# floating-point arithmetic, loops, switches, structs, string handling and
# constant tables, and a main that prints a checksum of each.
awk -v seed="$SEED" '
BEGIN {
  srand(seed)
  nf = 160
  print "#include <stdio.h>\n#include <string.h>\n#include <stdint.h>\n#include <stdlib.h>"
  print "struct rec { int32_t a; double b; char name[24]; struct rec *next; };"
  for (f = 0; f < nf; f++) {
    printf "static const int32_t table%d[%d] = {", f, 16 + f % 17
    for (k = 0; k < 16 + f % 17; k++) printf "%s%d", (k ? ", " : ""), int(rand() * 100000) - 50000
    print "};"
    printf "__attribute__((noinline)) uint64_t fn%d(uint64_t x, int n) {\n", f
    print "  uint64_t acc = x;"
    print "  struct rec r[8];"
    print "  memset(r, 0, sizeof r);"
    printf "  for (int i = 0; i < n; i++) {\n"
    ops = 3 + int(rand() * 8)
    for (o = 0; o < ops; o++) {
      t = int(rand() * 7)
      c = 1 + int(rand() * 1000)
      if (t == 0) printf "    acc = acc * %dULL + (acc >> %d);\n", 2 * c + 1, 1 + c % 31
      else if (t == 1) printf "    acc ^= (uint64_t)table%d[(acc + i) %% %d];\n", f, 16 + f % 17
      else if (t == 2) printf "    switch ((acc >> 3) %% 5) { case 0: acc += %d; break; case 1: acc -= i; break; case 2: acc = (acc << 7) | (acc >> 57); break; case 3: acc *= 3; break; default: acc ^= %d; }\n", c, c * 7
      else if (t == 3) printf "    r[i & 7].a += (int32_t)(acc %% %d); r[i & 7].b += (double)(acc %% 1000) / %d.0;\n", c + 2, c
      else if (t == 4) printf "    snprintf(r[i & 7].name, sizeof r[i & 7].name, \"%%d-%%llu\", i, (unsigned long long)(acc %% %d));\n    acc += strlen(r[i & 7].name);\n", c * 1000
      else if (t == 5) printf "    if ((acc & %d) == 0) acc = fn%d(acc, n / 8);\n", 255, (f > 0 ? int(rand() * f) : 0)
      else printf "    acc += (uint64_t)(r[(i + %d) & 7].b * 1000.0) + (uint64_t)r[i & 7].a;\n", c
    }
    print "  }"
    print "  for (int j = 0; j < 8; j++) acc += (uint64_t)r[j].a + (uint64_t)r[j].b + r[j].name[0];"
    print "  return acc;"
    print "}"
  }
  print "int main(int argc, char **argv) {"
  print "  uint64_t all = 0; (void)argv;"
  for (f = 0; f < nf; f++)
    printf "  { uint64_t v = fn%d(%dULL + (uint64_t)argc, %d); all ^= v; if (%d %% 25 == 0) printf(\"fn%d %%llu\\n\", (unsigned long long)v); }\n", f, int(rand() * 1000000), 20 + int(rand() * 200), f, f
  print "  printf(\"all %llu\\n\", (unsigned long long)all);"
  print "  return 0;"
  print "}"
}' >"$IN/gen.c"

workload() {
  cp "$IN/gen.c" gen.c
  local flags=(-O2 -g -Wall -Wno-unused-variable
    "-fdebug-prefix-map=$PWD=." "-ffile-prefix-map=$PWD=.")
  gcc "${flags[@]}" -c gen.c -o "$OUT/gen.o"
  gcc "${flags[@]}" -S gen.c -o "$OUT/gen.s"
  gcc -o "$OUT/gen" "$OUT/gen.o"
  "$OUT/gen" | tee "$OUT/run.txt" | tail -3
  gcc -O0 -o gen0 gen.c
  ./gen0 | cmp - "$OUT/run.txt"
}

compare_runs workload
