#!/usr/bin/env python3
"""check_layers.py: the house's layering rules, checked from the sources
and the built objects.

Rules (shared/STYLE.md, and the house issue):
  1. Layers read top-down: tools -> shim -> config -> core. A file may use
     its own directory and the ones below it, never one above.
  2. No circles between modules. A module is a file name without its
     extension (core/page.c and core/page.h are the module "page"). Module
      A uses module B when a file of A includes B's header, or when A's
     object file refers to a symbol that B's object file defines (calls
     through a declaration in another module's header count, inline
     functions included, since their references land in the object).
  3. Only core/os_linux.c maps memory: no other object of the libraries or
     the tool refers to mmap, munmap, mremap, mprotect, madvise or the
     libc brk/sbrk, and no other source names their raw system calls.
  4. Every mapping goes through the ledger: only core/vmmap.c calls the
     OS file's mapping functions (os_reserve, os_commit, os_map_file,
     os_purge, os_unmap, os_msync), so the ledger knows every range.

Usage:
  check_layers.py --src DIR --nm NM [--unit OBJ;OBJ... ]...
Each --unit is the objects of one linked program or library: a symbol is
resolved within its unit (the tool's free is libc's, the preload
library's is its own).
  check_layers.py --self-test --nm NM --cc CC
The self test builds a small tree with a circle and a stray mmap call and
checks that both are reported (so the checker itself can fail).
Exit status 0 when every rule holds, 1 with one line per fault.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

LAYERS = ["core", "config", "shim", "tools"]  # bottom to top
OS_FILE = "os_linux"
MAP_SYMBOLS = {"mmap", "mmap64", "munmap", "mremap", "mprotect", "madvise",
               "brk", "sbrk", "__mmap", "__munmap"}
MAP_SYSCALLS = re.compile(
    r"\bSYS_(mmap|munmap|mremap|mprotect|madvise|brk)\b|"
    r"\b__NR_(mmap|munmap|mremap|mprotect|madvise|brk)\b")
LEDGER = "vmmap"
OS_MAPPING = {"os_reserve", "os_commit", "os_map_file", "os_purge",
              "os_unmap", "os_msync"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def name_of(path):
    return os.path.splitext(os.path.basename(path))[0]


def module_of(path):
    """layer/name: core/page for core/page.c and core/page.h."""
    return "%s/%s" % (os.path.basename(os.path.dirname(path)), name_of(path))


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def sources(src):
    """(layer, path) of every .c and .h of the layered directories."""
    out = []
    for layer in LAYERS:
        d = os.path.join(src, layer)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            if name.endswith((".c", ".h")):
                out.append((layer, os.path.join(d, name)))
    return out


def nm_symbols(nm, obj):
    """(defined, undefined) global symbol names of an object file."""
    r = subprocess.run([nm, "-P", "-g", obj], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("check_layers: %s %s failed: %s" %
                         (nm, obj, r.stderr.strip()))
    defined, undefined = set(), set()
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) < 2:
            continue
        (undefined if f[1] in ("U", "w") else defined).add(f[0])
    return defined, undefined


def object_name(obj):
    # CMake names objects <source file name>.o: page.c.o
    base = os.path.basename(obj)
    if base.endswith(".c.o"):
        base = base[:-4]
    return os.path.splitext(base)[0]


def check(src, nm, units):
    faults = []
    edges = {}  # module -> {used module: reason}
    layer_of = {}
    by_ext = {".h": {}, ".c": {}}  # file name without extension -> modules
    files = sources(src)
    for layer, path in files:
        layer_of[module_of(path)] = layer
        by_ext[os.path.splitext(path)[1]].setdefault(
            name_of(path), set()).add(module_of(path))
    known = set(layer_of)

    def resolve(name, near, ext):
        """The module of a header (ext .h) or object (.c) named name;
        near: the layer of the file that names it (its own layer first).
        None: not ours (include/mmpool.h, the public header, declares the
        API of core/api.c: calls to it are seen in the objects)."""
        mods = by_ext[ext].get(name, set())
        own = "%s/%s" % (near, name)
        if own in mods:
            return own
        return sorted(mods)[0] if len(mods) == 1 else None

    def add(a, b, why):
        if a != b:
            edges.setdefault(a, {}).setdefault(b, why)

    # Sources: includes, and raw mapping system calls.
    for layer, path in files:
        text = open(path, encoding="utf-8", errors="replace").read()
        mod = module_of(path)
        rel = os.path.relpath(path, src)
        for inc in INCLUDE.findall(text):
            m = resolve(name_of(inc), layer, ".h")
            if m:
                add(mod, m, "%s includes %s" % (rel, inc))
        if name_of(path) != OS_FILE and MAP_SYSCALLS.search(strip_comments(text)):
            faults.append("%s: names a memory-mapping system call; only "
                          "core/%s.c maps memory (through core/vmmap.c)" %
                          (rel, OS_FILE))

    # Objects: in each unit, which module defines each symbol, and who
    # refers to it.
    seen = set()
    for objects in units:
        defs, undefs = {}, {}
        for obj in objects:
            name = object_name(obj)
            mod = resolve(name, None, ".c") or name
            d, u = nm_symbols(nm, obj)
            undefs.setdefault(mod, set()).update(u)
            for sym in d:
                defs.setdefault(sym, mod)
        for mod, syms in sorted(undefs.items()):
            for sym in sorted(syms):
                if sym in OS_MAPPING and name_of(mod) != LEDGER and (
                        mod, sym) not in seen:
                    seen.add((mod, sym))
                    faults.append("%s.o calls %s: mappings go through the "
                                  "ledger, core/%s.c" % (mod, sym, LEDGER))
                if sym in defs:
                    add(mod, defs[sym], "%s.o refers to %s" %
                        (name_of(mod), sym))
                elif (name_of(mod) != OS_FILE and sym in MAP_SYMBOLS and
                      (mod, sym) not in seen):
                    seen.add((mod, sym))
                    faults.append("%s.o calls %s; only core/%s.c maps "
                                  "memory (through core/vmmap.c)" %
                                  (mod, sym, OS_FILE))

    # Rule 1: no use of a higher layer.
    rank = {l: i for i, l in enumerate(LAYERS)}
    for a, used in sorted(edges.items()):
        for b, why in sorted(used.items()):
            la, lb = layer_of.get(a), layer_of.get(b)
            if la and lb and rank[lb] > rank[la]:
                faults.append("layer: %s/ uses %s/ (%s); layers go %s" %
                              (la, lb, why, " -> ".join(reversed(LAYERS))))

    # Rule 2: no circles (depth-first search for a back edge).
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(edges.get(m, {})):
            if state.get(n) == 1:
                cyc = stack[stack.index(n):] + [n]
                steps = ["%s -> %s (%s)" % (x, y, edges[x][y])
                         for x, y in zip(cyc, cyc[1:])]
                faults.append("circle: " + "; ".join(steps))
            elif not state.get(n):
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(set(edges) | known):
        if not state.get(m):
            visit(m)
    return faults, edges


def self_test(nm, cc):
    """A tree with a circle (a <-> b) and a stray mmap must be refused."""
    with tempfile.TemporaryDirectory() as d:
        core = os.path.join(d, "core")
        os.mkdir(core)
        files = {
            "a.h": "int a_fn(void);\n",
            "b.h": "int b_fn(void);\n",
            "a.c": '#include "a.h"\n#include "b.h"\n'
                   "int a_fn(void) { return b_fn(); }\n",
            "b.c": '#include "b.h"\n#include "a.h"\n#include <sys/mman.h>\n'
                   "int b_fn(void) { return mmap(0, 4096, 3, 0x22, -1, 0)"
                   " != 0; }\nint b_two(void) { return a_fn(); }\n",
        }
        for name, text in files.items():
            with open(os.path.join(core, name), "w") as f:
                f.write(text)
        objs = []
        for c in ("a.c", "b.c"):
            o = os.path.join(d, c + ".o")
            subprocess.run([cc, "-c", "-o", o, os.path.join(core, c)],
                           check=True)
            objs.append(o)
        faults, _ = check(d, nm, [objs])
        circle = any(f.startswith("circle: core/a -> core/b")
                     for f in faults)
        mapping = any("core/b.o calls mmap" in f for f in faults)
        for f in faults:
            print("self-test (expected): " + f)
        if not (circle and mapping):
            print("check_layers: the self test's circle or mmap call was "
                  "not reported")
            return 1
        print("check_layers: self test: the circle and the mmap call were "
              "reported")
        return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src")
    ap.add_argument("--nm", required=True)
    ap.add_argument("--cc")
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--graph", action="store_true",
                    help="print the module graph")
    ap.add_argument("--unit", action="append", default=[],
                    help="the ;-separated objects of one linked target")
    a = ap.parse_args()
    if a.self_test:
        return self_test(a.nm, a.cc or "cc")
    units = [[o for o in u.split(";") if o] for u in a.unit]
    faults, edges = check(a.src, a.nm, units)
    if a.graph:
        for m, used in sorted(edges.items()):
            print("%s -> %s" % (m, " ".join(sorted(used))))
    for f in faults:
        print("check_layers: " + f)
    if faults:
        return 1
    print("check_layers: %d modules, %d linked units: layers top-down, no "
          "circle, mmap only in core/%s.c" %
          (len(set(edges) | {m for u in edges.values() for m in u}),
           len(units), OS_FILE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
