// test_pooltool.c: `mmpool info`, `check`, `map` and `upgrade` on pool
// files made with the public API and then damaged, as a user runs them.
//
// `test_pooltool GROUP`, one ctest case per group:
//   sound    a sound file: check says so (status 0, nothing on stdout),
//            info in words and in JSON (parsed by python3, its figures
//            add up), roots and their liveness; a file attached by a
//            running process is refused
//   damaged  unclean (a child _exit()s with the pool open), truncated,
//            bit-flipped, resealed (both checksums recomputed after the
//            damage, as tests/integration/test_hostile.c does), foreign
//            and empty files: check's status and its exact lines; info
//            refuses what cannot be read; nothing crashes
//   fuzz     random damage, resealed: check never crashes, and says
//            "sound" only of files that the engine attaches (mode=private)
//   map      the SVG of a small pool and of a big one (cells aggregated)
//   upgrade  a version 1 file (made here from a version 2 one: the header
//            page rewritten in the version 1 layout) is checked, converted
//            and attached; damaged version 1 files are refused, untouched
//   usage    --help of each command, bad usage
// Links mmpool_core for the header layout, poolfile_seal, poolfile_meta_hash
// and hash_bytes.
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "scratch.h"
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hash.h"
#include "mmpool.h"
#include "poolfile.h"
#include "../common/poolimg.h"
#include "poolfile_v1.h"

// TOOL: from tests/tool/CMakeLists.txt.
#ifndef MMPOOL_SANITIZED
#define MMPOOL_SANITIZED 0
#endif

#define BASE 0x340000000000ull
#define ROOT1_LEN 24u
#define ROOT2_LEN (300u << 10)

static unsigned char *good;  // the sound file's bytes
static size_t good_len;
static char *good_path;

static char *pth(const char *name) {
  (void)path_in;  // child.h's, unused here
  static char bufs[16][600];
  static int next;
  char *b = bufs[next++ % 16];
  snprintf(b, sizeof bufs[0], "%s/%s", scratch, name);
  return b;
}

// ---------------------------------------------------------------------------
// Files

static void write_bytes(const char *path, const void *b, size_t n) {
  unlink(path);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  size_t done = 0;
  while (done < n) {
    ssize_t w = write(fd, (const char *)b + done, n - done);
    assert_true(w > 0);
    done += (size_t)w;
  }
  assert_int_equal(close(fd), 0);
}

static void read_bytes(const char *path, unsigned char **b, size_t *n) {
  int fd = open(path, O_RDONLY);
  assert_true(fd >= 0);
  struct stat st;
  assert_int_equal(fstat(fd, &st), 0);
  *n = (size_t)st.st_size;
  *b = malloc(*n ? *n : 1);
  assert_non_null(*b);
  size_t done = 0;
  while (done < *n) {
    ssize_t r = read(fd, *b + done, *n - done);
    assert_true(r > 0);
    done += (size_t)r;
  }
  close(fd);
}

// A pool made with the API in a child: small blocks of several classes
// (every other one freed), a free span between live blocks, a large block
// as root 2, a small one as root 1; closed cleanly unless unclean, when
// the child _exit()s with the pool open. opts: more options ("" for none).
static void make_pool(const char *path, const char *opts, int unclean) {
  unlink(path);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    char o[800];
    snprintf(o, sizeof o, "file=%s %s", path, opts);
    mmpool_t *pool = mmpool_open("good", o);
    if (!pool) _exit(10);
    char *r1 = mmpool_malloc(pool, ROOT1_LEN);
    void *small[300];
    for (int i = 0; i < 300; i++)
      if (!(small[i] = mmpool_malloc(pool, 16 + (size_t)(i % 7) * 40)))
        _exit(11);
    for (int i = 0; i < 300; i += 2) mmpool_free(small[i]);
    void *mid = mmpool_malloc(pool, 1u << 20);
    unsigned char *r2 = mmpool_malloc(pool, ROOT2_LEN);
    void *last = mmpool_malloc(pool, 200000);
    if (!r1 || !mid || !r2 || !last) _exit(12);
    memset(r1, 0x11, ROOT1_LEN);
    memset(r2, 0x22, ROOT2_LEN);
    mmpool_free(mid);
    if (mmpool_set_root(pool, 1, r1) || mmpool_set_root(pool, 2, r2) ||
        mmpool_set_root(pool, 3, r2 + 1000))
      _exit(13);
    if (mmpool_check(pool) != 0) _exit(14);
    if (unclean) _exit(0);
    _exit(mmpool_close(pool) == 0 ? 0 : 15);
  }
  assert_true(pid > 0);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}


static struct img img_copy(void) { return img_dup(good, good_len); }

static uint32_t find_head(struct img *m, uint8_t kind, uint32_t from) {
  struct poolfile_header *h = img_hdr(m);
  for (uint32_t i = 0; i < h->st.top; i += img_desc(m, i)->npages)
    if (i >= from && img_desc(m, i)->kind == kind) return i;
  fail_msg("no head of kind %u from page %u", kind, from);
  return 0;
}

static uint64_t page_addr(struct img *m, uint32_t i) {
  return img_hdr(m)->base + img_hdr(m)->data_off + ((uint64_t)i << 16);
}

static char *img_save(struct img *m, const char *name) {
  char *p = pth(name);
  write_bytes(p, m->b, m->len);
  free(m->b);
  m->b = NULL;
  return p;
}

// ---------------------------------------------------------------------------
// Running the tool

// In the sanitizer build the tool runs under ASan + UBSan, whose reports
// would exit with status 1, the status of a file that is not sound: they
// get a status of their own, and their words are looked for as well.
static struct child_res run_tool(const char *const *argv) {
  static const char *const env[] = {"ASAN_OPTIONS=exitcode=86",
                                    "UBSAN_OPTIONS=exitcode=86", NULL};
  struct child_res r = child_capture(argv, env, "tool");
  if (r.status == 86 || strstr(r.err, "AddressSanitizer") ||
      strstr(r.err, "runtime error:"))
    fail_msg("%s: a sanitizer report:\n%s", argv[1], r.err);
  return r;
}
#define TOOL_RUN(...) run_tool((const char *const[]){TOOL, __VA_ARGS__, NULL})

static unsigned count_lines(const char *s) {
  unsigned n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

static void assert_contains(const char *hay, const char *needle) {
  if (!strstr(hay, needle)) {
    print_error("not found: '%s'\n", needle);
    fail_msg("in:\n%s", hay);
  }
}

// `mmpool check path`: not sound, every stdout line "path: ...", one of
// them containing want (when not NULL); the number of lines.
static unsigned check_bad(const char *path, const char *want) {
  struct child_res r = TOOL_RUN("check", path);
  if (r.status != 1)
    fail_msg("check %s: status %d\nstdout:\n%s\nstderr:\n%s", path, r.status,
             r.out, r.err);
  unsigned n = count_lines(r.out);
  assert_true(n >= 1);
  char prefix[700];
  snprintf(prefix, sizeof prefix, "%s: ", path);
  for (const char *l = r.out; *l; l = strchr(l, '\n') + 1)
    if (strncmp(l, prefix, strlen(prefix)) != 0)
      fail_msg("line without the path: %s", l);
  if (want) assert_contains(r.out, want);
  child_res_free(&r);
  return n;
}

static void check_sound(const char *path) {
  struct child_res r = TOOL_RUN("check", path);
  if (r.status != 0)
    fail_msg("check %s: status %d\nstdout:\n%s\nstderr:\n%s", path, r.status,
             r.out, r.err);
  assert_string_equal(r.out, "");
  assert_contains(r.err, "sound");
  child_res_free(&r);
}

// python3 code run with sys.argv[1] = file; asserts its status is 0.
static void python2(const char *code, const char *file, const char *arg) {
  struct child_res r = run_tool((const char *const[]){"/usr/bin/python3", "-c",
                                                code, file, arg, NULL});
  if (r.status != 0)
    fail_msg("python3 failed (%d):\n%s\n%s", r.status, r.out, r.err);
  child_res_free(&r);
}

static void python(const char *code, const char *file) {
  python2(code, file, NULL);
}

// ---------------------------------------------------------------------------
// Fixtures

static int setup(void **state) {
  (void)state;
  if (scratch_setup("pooltool")) return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  free(good);
  return scratch_teardown();
}

static void make_good(void) {
  good_path = pth("good.pool");
  make_pool(good_path, "size=64M base=0x340000000000", 0);
  read_bytes(good_path, &good, &good_len);
}

// ---------------------------------------------------------------------------
// sound

static void test_sound_check(void **state) {
  (void)state;
  make_good();
  check_sound(good_path);
}

static void test_sound_info(void **state) {
  (void)state;
  struct child_res r = TOOL_RUN("info", good_path);
  assert_int_equal(r.status, 0);
  assert_string_equal(r.err, "");
  assert_contains(r.out, "format      version 2\n");
  assert_contains(r.out, "name        good\n");
  assert_contains(r.out, "base        0x340000000000\n");
  assert_contains(r.out, "capacity    64 MiB (67108864 bytes;");
  assert_contains(r.out, "generation  1 ");
  assert_contains(r.out, "state       clean (closed ");
  assert_contains(r.out, "uuid        ");
  char line[128];
  snprintf(line, sizeof line, "   1 -> 0x%llx (in the live block of 32 B at "
           "0x%llx)",
           (unsigned long long)img_hdr(&(struct img){good, 0})->roots[1],
           (unsigned long long)img_hdr(&(struct img){good, 0})->roots[1]);
  assert_contains(r.out, line);
  assert_contains(r.out, "   3 -> 0x");
  assert_contains(r.out, "(in the live block of 300 KiB at");
  assert_contains(r.out, "break       none\n");
  assert_contains(r.out, "live blocks by size class");
  assert_contains(r.out, "fragmentation");
  assert_contains(r.out, "check       no problem found by the walk");
  child_res_free(&r);
}

static void test_sound_json(void **state) {
  (void)state;
  char *js = pth("good.json");
  struct child_res r = TOOL_RUN("info", good_path, "--json");
  assert_int_equal(r.status, 0);
  write_bytes(js, r.out, strlen(r.out));
  child_res_free(&r);
  struct poolfile_header *h = (struct poolfile_header *)good;
  char code[3000];
  // 300 small blocks, every other one freed: 150 live of 7 sizes, plus
  // root 1 (24 bytes), and two large blocks (300 KiB, 100000 bytes).
  snprintf(code, sizeof code,
           "import json,sys\n"
           "d=json.load(open(sys.argv[1]))\n"
           "assert d['version']==2 and d['name']=='good', d\n"
           "assert d['base']==%llu and d['capacity']==%llu\n"
           "assert d['clean'] is True and d['generation']==1\n"
           "assert d['problems']==0\n"
           "assert d['length']==%llu and d['file_size']==%llu\n"
           "assert [r['key'] for r in d['roots']]==[1,2,3]\n"
           "assert all(r['live'] for r in d['roots'])\n"
           "assert d['roots'][0]['block_size']==%u\n"
           "assert d['roots'][2]['block']==d['roots'][1]['address']\n"
           "assert d['break'] is None\n"
           "assert d['large']['blocks']==2, d['large']\n"
           "assert d['large']['requested']==%u+200000\n"
           "live=sum(c['live_blocks'] for c in d['classes'])\n"
           "assert live==151, live\n"
           "req=sum(c['requested'] for c in d['classes'])\n"
           "want=%u+sum(16+(i%%7)*40 for i in range(1,300,2))\n"
           "assert req==want, (req, want)\n"
           "b=d['bytes']\n"
           "assert b['in_use']+b['free']+b['metadata']==b['mapped'], b\n"
           "assert b['free']==b['free_spans']+b['above_top']+b['in_slabs'], b\n"
           "assert b['free_spans']>=1<<20, b\n"
           "assert b['metadata']==4096+b['descriptors']+b['slack_arrays']\n"
           "assert b['not_in_file']==d['capacity']-d['length']\n"
           "f=d['fragmentation']\n"
           "assert 0<=f['slabs']<1 and 0<=f['free_spans']<1, f\n"
           "assert len(d['uuid'])==36\n",
           (unsigned long long)h->base, (unsigned long long)h->capacity,
           (unsigned long long)h->st.length, (unsigned long long)good_len,
           32, ROOT2_LEN, ROOT1_LEN);
  python(code, js);
}

// A file a process has attached (mode=shared holds an exclusive flock) is
// not read while it changes.
static void test_in_use(void **state) {
  (void)state;
  char *p = pth("busy.pool");
  write_bytes(p, good, good_len);
  int go[2], done[2];
  assert_int_equal(pipe(go), 0);
  assert_int_equal(pipe(done), 0);
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    char o[700];
    snprintf(o, sizeof o, "file=%s", p);
    mmpool_t *pool = mmpool_open("busy", o);
    char c = pool ? 'y' : 'n';
    if (write(go[1], &c, 1) != 1) _exit(1);
    if (read(done[0], &c, 1) != 1) _exit(1);
    _exit(pool && mmpool_close(pool) == 0 ? 0 : 2);
  }
  char c;
  assert_int_equal(read(go[0], &c, 1), 1);
  assert_int_equal(c, 'y');
  struct child_res r = TOOL_RUN("check", p);
  assert_int_equal(r.status, 1);
  assert_string_equal(r.out, "");
  assert_contains(r.err, "is in use by another process");
  child_res_free(&r);
  r = TOOL_RUN("info", p);
  assert_int_equal(r.status, 1);
  assert_contains(r.err, "is in use by another process");
  child_res_free(&r);
  assert_int_equal(write(done[1], "x", 1), 1);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  check_sound(p);  // closed again: clean, generation 2
}

// ---------------------------------------------------------------------------
// damaged

static void test_unclean(void **state) {
  (void)state;
  char *p = pth("unclean.pool");
  make_pool(p, "size=64M base=0x340000000000", 1);
  unsigned n = check_bad(p, "not closed cleanly (its process died, or it is "
                            "attached): attaching it needs the option "
                            "'recover'");
  assert_int_equal(n, 1);  // its structure is sound: the only problem
  struct child_res r = TOOL_RUN("info", p);
  assert_int_equal(r.status, 0);
  assert_contains(r.out, "state       not clean");
  child_res_free(&r);
  r = TOOL_RUN("info", "--json", p);
  assert_int_equal(r.status, 0);
  assert_contains(r.out, "\"clean\": false");
  child_res_free(&r);
}

static void test_truncated(void **state) {
  (void)state;
  char *p = pth("short.pool");
  write_bytes(p, good, 2000);
  assert_int_equal(check_bad(p, ": truncated: 2000 bytes, a pool file has at "
                                "least 4096\n"), 1);
  // Cut inside the data: the header says more than the file has.
  size_t cut = good_len - 65536;
  write_bytes(p, good, cut);
  char want[128];
  snprintf(want, sizeof want, "truncated: the file has %zu bytes, its header "
           "records %zu\n", cut, good_len);
  assert_int_equal(check_bad(p, want), 1);
  struct child_res r = TOOL_RUN("info", p);
  assert_int_equal(r.status, 1);
  assert_string_equal(r.out, "");
  assert_contains(r.err, want);
  child_res_free(&r);
  r = TOOL_RUN("map", p, "-o", pth("short.svg"));
  assert_int_equal(r.status, 1);
  child_res_free(&r);
}

static void test_bitflip(void **state) {
  (void)state;
  // In the identity: the header checksum.
  struct img m = img_copy();
  img_hdr(&m)->capacity ^= 1u << 20;
  char *p = img_save(&m, "flip1.pool");
  assert_int_equal(check_bad(p, ": header checksum mismatch (stored "), 1);
  // In a descriptor of a clean file: the metadata checksum, and what the
  // walk finds there.
  m = img_copy();
  uint32_t s = find_head(&m, PD_SLAB, 0);
  img_desc(&m, s)->used ^= 4;
  p = img_save(&m, "flip2.pool");
  char want[200];
  snprintf(want, sizeof want, ": page %u (0x%llx): ", s,
           (unsigned long long)page_addr(&(struct img){good, good_len}, s));
  assert_int_equal(check_bad(p, "metadata checksum mismatch (stored "), 2);
  check_bad(p, want);
  check_bad(p, "handed out\n");
  // In the state part of the header: out of range.
  m = img_copy();
  img_hdr(&m)->st.top = 0x7fffffff;
  p = img_save(&m, "flip3.pool");
  assert_int_equal(check_bad(p, ": top 2147483647 out of range\n"), 1);
}

static void test_resealed(void **state) {
  (void)state;
  struct img g = {good, good_len};
  // A free list that leaves its slab.
  struct img m = img_copy();
  uint32_t s = find_head(&m, PD_SLAB, 0);
  img_desc(&m, s)->free = 8;
  img_reseal(&m);
  char *p = img_save(&m, "free.pool");
  char want[300];
  snprintf(want, sizeof want, "%s: page %u (0x%llx): free list holds 0x%llx, "
           "not a block of the slab\n", p, s,
           (unsigned long long)page_addr(&g, s),
           (unsigned long long)(img_hdr(&g)->base + 8));
  assert_int_equal(check_bad(p, want), 1);

  // A size class out of range: the slab cannot be scanned, an error.
  m = img_copy();
  img_desc(&m, s)->cls = 200;
  img_reseal(&m);
  p = img_save(&m, "cls.pool");
  snprintf(want, sizeof want, "page %u (0x%llx): size class 200 out of "
           "range", s, (unsigned long long)page_addr(&g, s));
  check_bad(p, want);

  // A large block's tail, and a slab's count: two problems, two lines.
  m = img_copy();
  uint32_t l = find_head(&m, PD_LARGE, 0);
  assert_true(img_desc(&m, l)->npages >= 2);
  img_desc(&m, l + 1)->head_delta = 3;
  uint32_t s2 = find_head(&m, PD_SLAB, s + 1);
  img_desc(&m, s2)->used += 1;
  img_reseal(&m);
  p = img_save(&m, "two.pool");
  snprintf(want, sizeof want, "page %u (0x%llx): tail page %u of the span is "
           "wrong (kind 5, head_delta 3)", l,
           (unsigned long long)page_addr(&g, l), l + 1);
  assert_int_equal(check_bad(p, want), 2);
  snprintf(want, sizeof want, "page %u (0x%llx): ", s2,
           (unsigned long long)page_addr(&g, s2));
  check_bad(p, want);

  // A free span taken out of its bin.
  m = img_copy();
  uint32_t f = find_head(&m, PD_FREE, 0);
  for (unsigned b = 0; b < POOL_NBINS; b++)
    if (img_hdr(&m)->st.bins[b] == f + 1)
      img_hdr(&m)->st.bins[b] = img_desc(&m, f)->next;
  img_reseal(&m);
  p = img_save(&m, "bin.pool");
  snprintf(want, sizeof want, "page %u (0x%llx): free span of %u pages is "
           "in no bin", f, (unsigned long long)page_addr(&g, f),
           img_desc(&g, f)->npages);
  assert_int_equal(check_bad(p, want), 1);

  // A head of no known kind: the pages up to the next head are one run.
  m = img_copy();
  img_desc(&m, l)->kind = 9;
  img_reseal(&m);
  p = img_save(&m, "kind.pool");
  snprintf(want, sizeof want, "page %u (0x%llx): kind 9 where a span should "
           "start; pages %u-%u belong to no valid span", l,
           (unsigned long long)page_addr(&g, l), l,
           l + img_desc(&g, l)->npages - 1);
  assert_int_equal(check_bad(p, want), 1);

  // A thread-free list whose count lies (attach refuses the slab too).
  m = img_copy();
  img_desc(&m, s)->thread_free = (uint64_t)3 << TF_COUNT_SHIFT;
  img_reseal(&m);
  p = img_save(&m, "tfcount.pool");
  snprintf(want, sizeof want, "page %u (0x%llx): the thread-free list holds "
           "0 blocks, its count says 3", s,
           (unsigned long long)page_addr(&g, s));
  assert_int_equal(check_bad(p, want), 1);

  // A live block's slack larger than its block.
  m = img_copy();
  struct pdesc *d = img_desc(&m, s);
  uint64_t off = img_hdr(&m)->data_off + ((uint64_t)s << 16) +
                 0;  // block 0: root 1, live
  uint16_t *slack =
      (uint16_t *)(m.b + d->slack_off + ((off >> d->gshift) << 1));
  *slack = (uint16_t)(d->bsize + 1);
  img_reseal(&m);
  p = img_save(&m, "slack.pool");
  check_bad(p, "live blocks record a slack larger than their");

  // info describes a file with problems, and counts them.
  struct child_res r = TOOL_RUN("info", p);
  assert_int_equal(r.status, 0);
  assert_contains(r.out, "check       1 problem: run 'mmpool check FILE'");
  child_res_free(&r);
}

// Feature bits this build does not know: ro_compat is read (and attaches
// with mode=private only), incompat refused.
static void test_features(void **state) {
  (void)state;
  struct img m = img_copy();
  img_hdr(&m)->feature_ro_compat = 0x4;
  img_reseal(&m);
  char *p = img_save(&m, "rocompat.pool");
  struct child_res r = TOOL_RUN("check", p);
  assert_int_equal(r.status, 0);
  assert_string_equal(r.out, "");
  assert_contains(r.err, "uses read-only-compatible features this build "
                         "does not know (0x4): it attaches with mode=private "
                         "only");
  child_res_free(&r);
  r = TOOL_RUN("info", p);
  assert_int_equal(r.status, 0);
  assert_contains(r.out, "features    compat 0x1, ro_compat 0x4, incompat "
                         "0x0 (unknown read-only-compatible bits: attach "
                         "with mode=private only)\n");
  child_res_free(&r);
  m = img_copy();
  img_hdr(&m)->feature_incompat = 0x10;
  img_reseal(&m);
  p = img_save(&m, "incompat.pool");
  assert_int_equal(check_bad(p, ": uses features this build does not know "
                                "(incompatible feature bits 0x10)\n"), 1);
}

static void test_foreign_empty(void **state) {
  (void)state;
  char *p = pth("foreign.pool");
  char text[8192];
  memset(text, 'x', sizeof text);
  write_bytes(p, text, sizeof text);
  assert_int_equal(check_bad(p, ": not an mmpool pool file (bad magic)\n"), 1);
  p = pth("empty.pool");
  write_bytes(p, "", 0);
  assert_int_equal(check_bad(p, ": empty (0 bytes): not a pool file\n"), 1);
  struct child_res r = TOOL_RUN("info", p);
  assert_int_equal(r.status, 1);
  assert_contains(r.err, "empty (0 bytes)");
  child_res_free(&r);
  r = TOOL_RUN("check", pth("missing.pool"));
  assert_int_equal(r.status, 1);
  assert_contains(r.err, "missing.pool: ENOENT");
  child_res_free(&r);
  // A symbolic link is not followed.
  char *ln = pth("link.pool");
  assert_int_equal(symlink(good_path, ln), 0);
  r = TOOL_RUN("check", ln);
  assert_int_equal(r.status, 1);
  assert_contains(r.err, "symbolic link");
  child_res_free(&r);
}

// ---------------------------------------------------------------------------
// fuzz

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
  rnd_state ^= rnd_state << 13;
  rnd_state ^= rnd_state >> 7;
  rnd_state ^= rnd_state << 17;
  return rnd_state;
}

// 0 when the engine attaches path read-only (mode=private), else errno.
static int attaches(const char *path) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    char o[700];
    snprintf(o, sizeof o, "file=%s mode=private", path);
    mmpool_t *pool = mmpool_open("f", o);
    _exit(pool ? 0 : errno ? (errno & 0x7f) : 127);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  return WEXITSTATUS(st);
}

static void test_fuzz(void **state) {
  (void)state;
  unsigned sound = 0, stricter = 0, runs = MMPOOL_SANITIZED ? 60 : 150;
  // POOLTOOL_FUZZ_RUNS=N for a longer campaign by hand.
  const char *more = getenv("POOLTOOL_FUZZ_RUNS");
  if (more && atoi(more) > 0) runs = (unsigned)atoi(more);
  struct img g = {good, good_len};
  uint64_t meta_end = img_hdr(&g)->desc_off + img_hdr(&g)->st.top * 64;
  for (unsigned i = 0; i < runs; i++) {
    struct img m = img_copy();
    unsigned edits = 1 + rnd() % 3;
    for (unsigned e = 0; e < edits; e++) {
      uint64_t off;
      switch (rnd() % 4) {
      case 0:  // the state part of the header
        off = POOLFILE_IDENT_SIZE + rnd() % sizeof(struct pool_state);
        break;
      case 1:
      case 2: {  // the descriptors in use
        uint64_t d0 = img_hdr(&g)->desc_off;
        off = d0 + rnd() % (meta_end - d0);
        break;
      }
      default: {  // the data (free lists, slack arrays)
        uint64_t d1 = img_hdr(&g)->data_off;
        off = d1 + rnd() % (good_len - d1);
      }
      }
      m.b[off] ^= (unsigned char)(1u << (rnd() % 8));
    }
    img_reseal(&m);
    char *p = img_save(&m, "fuzz.pool");
    struct child_res r = TOOL_RUN("check", p);
    if (r.status != 0 && r.status != 1)
      fail_msg("run %u: check died with status %d\n%s%s", i, r.status, r.out,
               r.err);
    int a = attaches(p);
    if (r.status == 0 && a != 0)
      fail_msg("run %u: check says sound, attach refuses (%d)", i, a);
    if (r.status == 0) sound++;
    if (r.status == 1 && a == 0) {
      stricter++;
      print_message("run %u: attached, but check says:\n%s", i, r.out);
    }
    // info and map read it too, without crashing.
    child_res_free(&r);
    r = TOOL_RUN("info", "--json", p);
    assert_true(r.status == 0 || r.status == 1);
    child_res_free(&r);
    r = TOOL_RUN("map", p, "-o", pth("fuzz.svg"));
    assert_true(r.status == 0 || r.status == 1);
    child_res_free(&r);
  }
  print_message("fuzz: %u of %u damaged files still sound; %u attached "
                "but not sound by check\n", sound, runs, stricter);
}

// ---------------------------------------------------------------------------
// map

static const char *svg_check =
    "import sys, xml.etree.ElementTree as E\n"
    "t=E.parse(sys.argv[1]).getroot()\n"
    "ns='{http://www.w3.org/2000/svg}'\n"
    "assert t.tag==ns+'svg'\n"
    "cells=t.find(ns+'g[@id=\"cells\"]')\n"
    "legend=t.find(ns+'g[@id=\"legend\"]')\n"
    "n=len(cells.findall(ns+'rect'))\n"
    "big=len(sys.argv)>2\n"
    "labels=[x.text for x in legend.findall(ns+'text')]\n"
    "assert any(l.startswith('metadata') for l in labels), labels\n"
    "assert any(l.startswith('not in the file') for l in labels), labels\n"
    "open(sys.argv[1]+'.cells','w').write(str(n))\n"
    "if big: sys.exit(0)\n"
    "assert any(l.startswith('slabs of 16 B blocks') for l in labels), labels\n"
    "assert any(l.startswith('large blocks') for l in labels), labels\n"
    "assert any(l.startswith('free spans') for l in labels), labels\n"
    "fills={r.get('fill') for r in cells.findall(ns+'rect')}\n"
    "assert len(fills)>=5, fills\n";

static void test_map(void **state) {
  (void)state;
  char *svg = pth("good.svg");
  struct child_res r = TOOL_RUN("map", good_path, "-o", svg);
  assert_int_equal(r.status, 0);
  assert_contains(r.err, "cells of 64 KiB written to");
  child_res_free(&r);
  python(svg_check, svg);
  // 64 MiB: 1024 units of 64 KiB, one cell each.
  char cells[700];
  snprintf(cells, sizeof cells, "%s.cells", svg);
  char *n = slurp(cells);
  assert_string_equal(n, "1024");
  free(n);

  // A pool of 1 TiB: 16 Mi pages, 4096 cells of 4096 pages each (the
  // file itself is small and sparse).
  char *big = pth("big.pool");
  make_pool(big, "size=1T", 0);
  svg = pth("big.svg");
  r = TOOL_RUN("map", big, "--output", svg);
  assert_int_equal(r.status, 0);
  assert_contains(r.err, "4096 cells of 256 MiB written to");
  child_res_free(&r);
  python2(svg_check, svg, "big");
  snprintf(cells, sizeof cells, "%s.cells", svg);
  n = slurp(cells);
  assert_string_equal(n, "4096");
  free(n);
  check_sound(big);
  unlink(big);
}

// ---------------------------------------------------------------------------
// upgrade

// The version 1 image of a version 2 one: the same descriptors and data,
// the header page rewritten in the version 1 layout. Version 1's metadata
// checksum covers the slack arrays too (it has no feature bits): recomputed
// so, without POOLFILE_COMPAT_META_DESC.
static void to_v1(struct img *m) {
  if (img_hdr(m)->flags & POOLFILE_CLEAN) {
    img_hdr(m)->feature_compat &= ~POOLFILE_COMPAT_META_DESC;
    img_hdr(m)->meta_checksum = poolfile_meta_hash(img_hdr(m));
  }
  struct poolfile_header h = *img_hdr(m);
  struct poolfile_header_v1 o;
  memset(&o, 0, sizeof o);
  memcpy(o.magic, h.magic, 8);
  o.version = 1;
  o.header_size = sizeof o;
  o.word_size = h.word_size;
  o.byte_order = h.byte_order;
  o.page_shift = h.page_shift;
  o.nclasses = h.nclasses;
  o.os_page_size = h.os_page_size;
  o.desc_size = h.desc_size;
  o.flags = h.flags;
  o.layout_hash = h.layout_hash;
  o.base = h.base;
  o.capacity = h.capacity;
  o.generation = h.generation;
  o.desc_off = h.desc_off;
  o.data_off = h.data_off;
  o.npages = h.npages;
  o.meta_checksum = h.meta_checksum;
  memcpy(o.roots, h.roots, sizeof o.roots);
  memcpy(o.name, h.name, sizeof o.name);
  o.st.length = h.st.length;
  o.st.meta_committed = h.st.meta_committed;
  o.st.top = h.st.top;
  o.st.hiwater = h.st.hiwater;
  memcpy(o.st.bins, h.st.bins, sizeof o.st.bins);
  memcpy(o.st.avail, h.st.avail, sizeof o.st.avail);
  o.checksum = hash_bytes(&o, offsetof(struct poolfile_header_v1, checksum),
                          0);
  memset(m->b, 0, POOLFILE_HEADER_SIZE);
  memcpy(m->b, &o, sizeof o);
}

static void set_mtime(const char *path, time_t t) {
  struct timespec ts[2] = {{t, 0}, {t, 0}};
  assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

// Attaches path in a child: root 1 holds ROOT1_LEN bytes of 0x11, root 2
// ROOT2_LEN of 0x22; the pool checks; 0 when all is so.
static int attach_and_read(const char *path, const char *extra) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    char o[700];
    snprintf(o, sizeof o, "file=%s %s", path, extra);
    mmpool_t *pool = mmpool_open("up", o);
    if (!pool) {
      fprintf(stderr, "%s\n", mmpool_last_error());
      _exit(10);
    }
    unsigned char *r1 = mmpool_get_root(pool, 1);
    unsigned char *r2 = mmpool_get_root(pool, 2);
    if (!r1 || !r2) _exit(11);
    for (unsigned i = 0; i < ROOT1_LEN; i++)
      if (r1[i] != 0x11) _exit(12);
    for (unsigned i = 0; i < ROOT2_LEN; i++)
      if (r2[i] != 0x22) _exit(13);
    if (mmpool_check(pool) != 0) _exit(14);
    void *b = mmpool_malloc(pool, 1000);
    if (!b) _exit(15);
    _exit(mmpool_close(pool) == 0 ? 0 : 16);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_upgrade(void **state) {
  (void)state;
  struct img m = img_copy();
  uint64_t gen = img_hdr(&m)->generation;
  to_v1(&m);
  char *p = img_save(&m, "v1.pool");
  set_mtime(p, 1700000000);
  // Refused by attach, and by check with one line (its structure is sound).
  assert_int_equal(attach_and_read(p, ""), 10);
  char want[700];
  snprintf(want, sizeof want, "%s: format version 1, which this build does "
           "not attach: convert it with 'mmpool upgrade FILE' (its structure "
           "is checked below)\n", p);
  assert_int_equal(check_bad(p, want), 1);
  struct child_res r = TOOL_RUN("info", p);
  assert_int_equal(r.status, 0);
  assert_contains(r.out, "format      version 1: this build does not attach "
                         "it; convert it with 'mmpool upgrade FILE'");
  assert_contains(r.out, "state       clean");
  child_res_free(&r);

  r = TOOL_RUN("upgrade", p);
  if (r.status != 0) fail_msg("upgrade: %d\n%s%s", r.status, r.out, r.err);
  assert_contains(r.out, ": converted from version 1 to version 2 "
                         "(generation 1, uuid ");
  assert_contains(r.out, ", clean)\n");
  child_res_free(&r);
  check_sound(p);
  char *js = pth("v1.json");
  r = TOOL_RUN("info", "--json", p);
  assert_int_equal(r.status, 0);
  write_bytes(js, r.out, strlen(r.out));
  child_res_free(&r);
  char code[600];
  snprintf(code, sizeof code,
           "import json,sys\n"
           "d=json.load(open(sys.argv[1]))\n"
           "assert d['version']==2 and d['clean'] is True\n"
           "assert d['created']==1700000000 and d['closed']==1700000000, d\n"
           "assert d['generation']==%llu and d['problems']==0\n"
           "assert [r['key'] for r in d['roots']]==[1,2,3]\n",
           (unsigned long long)gen);
  python(code, js);
  // No copy is left behind, and the file is the engine's again.
  r = run_tool((const char *const[]){"/bin/sh", "-c",
                                     "ls \"$0\".upgrade-* 2>/dev/null", p,
                                     NULL});
  assert_string_equal(r.out, "");
  child_res_free(&r);
  assert_int_equal(attach_and_read(p, ""), 0);

  // Already version 2: nothing to do.
  r = TOOL_RUN("upgrade", p);
  assert_int_equal(r.status, 0);
  assert_contains(r.out, ": already version 2: nothing to do\n");
  child_res_free(&r);
}

static void test_upgrade_refused(void **state) {
  (void)state;
  // A damaged version 1 header: refused, the file untouched.
  struct img m = img_copy();
  to_v1(&m);
  ((struct poolfile_header_v1 *)m.b)->capacity ^= 1u << 20;
  char *p = img_save(&m, "v1bad.pool");
  unsigned char *before, *after;
  size_t nb, na;
  read_bytes(p, &before, &nb);
  struct child_res r = TOOL_RUN("upgrade", p);
  assert_int_equal(r.status, 1);
  assert_contains(r.err, "version 1 header checksum mismatch");
  child_res_free(&r);
  read_bytes(p, &after, &na);
  assert_true(nb == na && memcmp(before, after, nb) == 0);
  free(before);
  free(after);

  // A version 1 header of another size, and one with a field out of
  // range, each with its checksum made right.
  m = img_copy();
  to_v1(&m);
  struct poolfile_header_v1 *o = (struct poolfile_header_v1 *)m.b;
  o->header_size = 888;
  o->checksum = hash_bytes(o, offsetof(struct poolfile_header_v1, checksum),
                           0);
  p = img_save(&m, "v1size.pool");
  r = TOOL_RUN("upgrade", p);
  assert_int_equal(r.status, 1);
  assert_contains(r.err, ": not a version 1 header (version 1, header size "
                         "888; version 1 has 880)\n");
  child_res_free(&r);
  m = img_copy();
  to_v1(&m);
  o = (struct poolfile_header_v1 *)m.b;
  o->st.top = (uint32_t)o->npages + 1;
  p = img_save(&m, "v1top.pool");
  r = TOOL_RUN("upgrade", p);
  assert_int_equal(r.status, 1);
  assert_contains(r.err, " out of range\n");
  child_res_free(&r);
  assert_int_equal(check_bad(p, "top "), 1);

  // A version 1 file whose structure does not check (a slab's count), the
  // metadata checksum recomputed: refused with the problem's line.
  m = img_copy();
  uint32_t s = find_head(&m, PD_SLAB, 0);
  img_desc(&m, s)->used += 2;
  img_reseal(&m);
  to_v1(&m);
  p = img_save(&m, "v1damaged.pool");
  read_bytes(p, &before, &nb);
  r = TOOL_RUN("upgrade", p);
  assert_int_equal(r.status, 1);
  assert_contains(r.out, "handed out\n");
  assert_contains(r.err, "not converted: 1 problem");
  child_res_free(&r);
  read_bytes(p, &after, &na);
  assert_true(nb == na && memcmp(before, after, nb) == 0);
  free(before);
  free(after);

  // A version 1 file left unclean by its process, structure sound:
  // converted, still unclean, and attached with recover.
  char *u = pth("v1unclean-src.pool");
  make_pool(u, "size=64M base=0x340000000000", 1);
  struct img um;
  read_bytes(u, &um.b, &um.len);
  to_v1(&um);
  p = img_save(&um, "v1unclean.pool");
  r = TOOL_RUN("upgrade", p);
  assert_int_equal(r.status, 0);
  assert_contains(r.out, "not clean: attach it with 'recover')\n");
  child_res_free(&r);
  assert_int_equal(check_bad(p, "not closed cleanly"), 1);
  assert_int_equal(attach_and_read(p, ""), 10);
  assert_int_equal(attach_and_read(p, "recover"), 0);
  check_sound(p);
}

// ---------------------------------------------------------------------------
// usage

static void test_usage(void **state) {
  (void)state;
  static const char *const cmds[] = {"info", "check", "map", "upgrade"};
  for (unsigned i = 0; i < 4; i++) {
    struct child_res r = TOOL_RUN(cmds[i], "--help");
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "Usage: mmpool ");
    assert_contains(r.out, "Exit status: 0 ");
    assert_null(strstr(r.out, "not available"));
    child_res_free(&r);
    r = TOOL_RUN(cmds[i]);
    assert_int_equal(r.status, 2);
    assert_contains(r.err, "missing FILE");
    child_res_free(&r);
    r = TOOL_RUN(cmds[i], "a.pool", "b.pool");
    assert_int_equal(r.status, 2);
    assert_contains(r.err, "one FILE only");
    child_res_free(&r);
    r = TOOL_RUN(cmds[i], "--bogus", "a.pool");
    assert_int_equal(r.status, 2);
    assert_contains(r.err, "unknown option '--bogus'");
    child_res_free(&r);
  }
  struct child_res r = TOOL_RUN("map", "a.pool");
  assert_int_equal(r.status, 2);
  assert_contains(r.err, "map: missing -o MAP.svg");
  child_res_free(&r);
}

int main(int argc, char **argv) {
  const char *g = argc > 1 ? argv[1] : "";
  const struct CMUnitTest sound[] = {
      cmocka_unit_test(test_sound_check), cmocka_unit_test(test_sound_info),
      cmocka_unit_test(test_sound_json), cmocka_unit_test(test_in_use)};
  const struct CMUnitTest damaged[] = {
      cmocka_unit_test(test_sound_check), cmocka_unit_test(test_unclean),
      cmocka_unit_test(test_truncated), cmocka_unit_test(test_bitflip),
      cmocka_unit_test(test_resealed), cmocka_unit_test(test_features),
      cmocka_unit_test(test_foreign_empty)};
  const struct CMUnitTest fuzz[] = {cmocka_unit_test(test_sound_check),
                                    cmocka_unit_test(test_fuzz)};
  const struct CMUnitTest map[] = {cmocka_unit_test(test_sound_check),
                                   cmocka_unit_test(test_map)};
  const struct CMUnitTest upgrade[] = {
      cmocka_unit_test(test_sound_check), cmocka_unit_test(test_upgrade),
      cmocka_unit_test(test_upgrade_refused)};
  const struct CMUnitTest usage[] = {cmocka_unit_test(test_usage)};
  if (!strcmp(g, "sound"))
    return cmocka_run_group_tests_name("sound", sound, setup, teardown);
  if (!strcmp(g, "damaged"))
    return cmocka_run_group_tests_name("damaged", damaged, setup, teardown);
  if (!strcmp(g, "fuzz"))
    return cmocka_run_group_tests_name("fuzz", fuzz, setup, teardown);
  if (!strcmp(g, "map"))
    return cmocka_run_group_tests_name("map", map, setup, teardown);
  if (!strcmp(g, "upgrade"))
    return cmocka_run_group_tests_name("upgrade", upgrade, setup, teardown);
  if (!strcmp(g, "usage"))
    return cmocka_run_group_tests_name("usage", usage, setup, teardown);
  fprintf(stderr, "usage: test_pooltool sound|damaged|fuzz|map|upgrade|"
          "usage\n");
  return 2;
}
