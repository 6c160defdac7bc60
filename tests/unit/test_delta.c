// test_delta.c: the delta files of incremental snapshots (core/delta.c):
// what the writer makes applies to the image it names and makes the image
// it names; every lie of a hostile or damaged delta is refused, with its
// reason, before a byte of the view changes.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "delta.h"
#include "poolfile.h"

#define VIEW (64u << 10)
#define SUM_AT offsetof(struct poolfile_header, checksum)

static char path[] = "/tmp/mmpool-delta-XXXXXX";
static int fd = -1;
static char page_a[4096], page_b[8192];

static void set_sum(char *img, uint64_t v) { memcpy(img + SUM_AT, &v, 8); }

// Ends the delta being written: from the image `from` (20 KiB, checksum
// 0x1111) to one of length len whose header checksum is 0x2222.
static void finish(uint64_t len) {
  struct delta_header dh;
  memset(&dh, 0, sizeof dh);
  dh.serial = 7;
  dh.from_length = 20480;
  dh.from_checksum = 0x1111;
  dh.length = len;
  dh.to_checksum = 0x2222;
  assert_int_equal(delta_out_end(&dh), 0);
}

// A delta of the image `from` (len 20 KiB, checksum 0x1111) making the
// image of 24 KiB whose header page is page_a (checksum 0x2222): the
// header page, zeros over [8 KiB, 12 KiB), page_b at [16 KiB, 24 KiB).
static void write_good(void) {
  assert_int_equal(ftruncate(fd, 0), 0);
  memset(page_a, 0xa5, sizeof page_a);
  set_sum(page_a, 0x2222);
  memset(page_b, 0x5b, sizeof page_b);
  delta_out_begin(fd);
  assert_int_equal(delta_out_data(0, page_a, 4096), 0);
  assert_int_equal(delta_out_zero(8192, 4096), 0);
  assert_int_equal(delta_out_data(16384, page_b, 4096), 0);
  // Continues the record before it: one record, one run of data.
  assert_int_equal(delta_out_data(20480, page_b + 4096, 4096), 0);
  finish(24576);
}

static void read_all(struct delta_header *dh, struct delta_rec *recs) {
  assert_int_equal(pread(fd, dh, sizeof *dh, 0), (ssize_t)sizeof *dh);
  if (recs)
    assert_int_equal(pread(fd, recs, dh->nrec * sizeof *recs,
                           DELTA_DATA_OFF + dh->data_bytes),
                     (ssize_t)(dh->nrec * sizeof *recs));
}

static void write_all(const struct delta_header *dh,
                      const struct delta_rec *recs) {
  assert_int_equal(pwrite(fd, dh, sizeof *dh, 0), (ssize_t)sizeof *dh);
  assert_int_equal(pwrite(fd, recs, dh->nrec * sizeof *recs,
                          DELTA_DATA_OFF + dh->data_bytes),
                   (ssize_t)(dh->nrec * sizeof *recs));
}

// The view: the image `from` (20 KiB of 0x33, its checksum 0x1111), zeros
// after it.
static char *from_view(void) {
  char *v = calloc(1, VIEW);
  assert_non_null(v);
  memset(v, 0x33, 20480);
  set_sum(v, 0x1111);
  return v;
}

// Applies the delta in the file; returns the error, why in why.
static int apply(char *v, uint64_t *len, char *why, size_t n) {
  struct delta_header dh;
  read_all(&dh, NULL);
  off_t size = lseek(fd, 0, SEEK_END);
  int r = delta_check_header(&dh, (uint64_t)size, why, n);
  return r ? r : delta_apply(fd, &dh, v, VIEW, len, why, n);
}

static void test_roundtrip(void **state) {
  (void)state;
  write_good();
  struct delta_header dh;
  struct delta_rec recs[8];
  read_all(&dh, recs);
  assert_int_equal(dh.nrec, 3);  // header page, zeros, the two pages
  assert_int_equal(dh.data_bytes, 3 * 4096);
  assert_int_equal(recs[2].off, 16384);
  assert_int_equal(recs[2].len, 8192);
  char *v = from_view(), why[200] = "";
  uint64_t len = 20480;
  if (apply(v, &len, why, sizeof why)) fail_msg("apply: %s", why);
  assert_int_equal(len, 24576);
  assert_memory_equal(v, page_a, 4096);
  for (int i = 4096; i < 8192; i++) assert_int_equal(v[i], 0x33);
  for (int i = 8192; i < 12288; i++) assert_int_equal(v[i], 0);
  for (int i = 12288; i < 16384; i++) assert_int_equal(v[i], 0x33);
  assert_memory_equal(v + 16384, page_b, 8192);
  for (unsigned i = 24576; i < VIEW; i++) assert_int_equal(v[i], 0);
  // Applied twice: it applies to the image it names, not to the one it
  // made.
  assert_int_not_equal(apply(v, &len, why, sizeof why), 0);
  assert_non_null(strstr(why, "applies to an image of 20480 bytes, not of "
                              "24576"));
  free(v);
}

// A capture (the process writing its own deltas, core/snapshot.c): the
// same delta, its data copied into a buffer at once and written after,
// is the same file byte for byte; the sources may change once copied;
// a buffer too small says so and writes nothing.
static void test_capture(void **state) {
  (void)state;
  write_good();
  off_t size = lseek(fd, 0, SEEK_END);
  assert_true(size > 0);
  char *want = malloc((size_t)size);
  assert_non_null(want);
  assert_int_equal(pread(fd, want, (size_t)size, 0), size);

  static char buf[64 << 10] __attribute__((aligned(4096)));
  assert_int_equal(ftruncate(fd, 0), 0);
  delta_capture_begin(buf, sizeof buf);
  assert_int_equal(delta_out_begin(fd), 0);
  assert_int_equal(delta_out_data(0, page_a, 4096), 0);
  assert_int_equal(delta_out_zero(8192, 4096), 0);
  assert_int_equal(delta_out_data(16384, page_b, 4096), 0);
  assert_int_equal(delta_out_data(20480, page_b + 4096, 4096), 0);
  struct delta_header dh;
  memset(&dh, 0, sizeof dh);
  dh.serial = 7;
  dh.from_length = 20480;
  dh.from_checksum = 0x1111;
  dh.length = 24576;
  dh.to_checksum = 0x2222;
  assert_int_equal(delta_out_end(&dh), 0);
  uint64_t len = 0;
  const char *area = delta_captured(&len);
  delta_capture_end();
  assert_int_equal(lseek(fd, 0, SEEK_END), 0);  // nothing written yet
  memset(page_b, 0x77, sizeof page_b);          // copied: may change
  assert_int_equal(delta_capture_write(fd, &dh, area, len), 0);
  assert_int_equal(lseek(fd, 0, SEEK_END), size);
  char *got = malloc((size_t)size);
  assert_non_null(got);
  assert_int_equal(pread(fd, got, (size_t)size, 0), size);
  assert_memory_equal(got, want, (size_t)size);

  // A buffer of 8 KiB holds the header page and one more: the third page
  // does not fit.
  delta_capture_begin(buf, 8192);
  assert_int_equal(delta_out_begin(fd), 0);
  assert_int_equal(delta_out_data(0, page_a, 4096), 0);
  assert_int_equal(delta_out_data(16384, page_b, 4096), 0);
  assert_int_equal(delta_out_data(20480, page_b + 4096, 4096), -ENOBUFS);
  delta_capture_end();
  free(want);
  free(got);
}

// A shorter image: nothing stays past its end.
static void test_shrink(void **state) {
  (void)state;
  assert_int_equal(ftruncate(fd, 0), 0);
  delta_out_begin(fd);
  assert_int_equal(delta_out_data(0, page_a, 4096), 0);
  finish(8192);
  char *v = from_view(), why[200] = "";
  uint64_t len = 20480;
  if (apply(v, &len, why, sizeof why)) fail_msg("apply: %s", why);
  assert_int_equal(len, 8192);
  for (int i = 4096; i < 8192; i++) assert_int_equal(v[i], 0x33);
  for (unsigned i = 8192; i < VIEW; i++) assert_int_equal(v[i], 0);
  free(v);
}

// Each lie, resealed (so that the checksum is not what refuses it), is
// refused with its reason, and the view is left as it was.
static void test_hostile(void **state) {
  (void)state;
  struct {
    const char *what, *says;
  } cases[] = {
      {"from_checksum", "applies to the image whose header checksum"},
      {"from_length", "applies to an image of"},
      {"order", "out of bounds or out of order"},
      {"overlap", "out of bounds or out of order"},
      {"past the end", "out of bounds or out of order"},
      {"kind", "out of bounds or out of order"},
      {"empty record", "out of bounds or out of order"},
      {"data count", "its records hold"},
      {"to_checksum", "the header it writes has checksum"},
      {"too long", "makes an image of"},
      {"not sealed", "delta checksum mismatch"},
      {"cut", "says 3 records"},
      {"records", "says"},
      {"magic", "not an mmpool snapshot delta"},
      {"version", "delta version"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    write_good();
    struct delta_header dh;
    struct delta_rec recs[8];
    read_all(&dh, recs);
    int seal = 1;
    const char *w = cases[c].what;
    if (!strcmp(w, "from_checksum")) dh.from_checksum ^= 1;
    if (!strcmp(w, "from_length")) dh.from_length += 4096;
    if (!strcmp(w, "order")) {
      struct delta_rec t = recs[1];
      recs[1] = recs[2];
      recs[2] = t;
    }
    if (!strcmp(w, "overlap")) recs[1].off = 2048;
    if (!strcmp(w, "past the end")) recs[2].len = 1u << 20;
    if (!strcmp(w, "kind")) recs[1].kind = 9;
    if (!strcmp(w, "empty record")) recs[1].len = 0;
    if (!strcmp(w, "data count")) recs[1].kind = DELTA_REC_DATA;
    if (!strcmp(w, "to_checksum")) dh.to_checksum ^= 1;
    if (!strcmp(w, "too long")) dh.length = VIEW + 4096;
    if (!strcmp(w, "not sealed")) seal = 0, recs[0].len = 2048;
    if (!strcmp(w, "magic")) dh.magic[0] = 'X';
    if (!strcmp(w, "version")) dh.version = 99;
    if (seal) delta_seal(&dh, recs);
    write_all(&dh, recs);
    if (!strcmp(w, "cut"))
      assert_int_equal(ftruncate(fd, lseek(fd, 0, SEEK_END) - 24), 0);
    if (!strcmp(w, "records")) {
      dh.nrec = UINT64_MAX / 8;
      assert_int_equal(pwrite(fd, &dh, sizeof dh, 0), (ssize_t)sizeof dh);
    }
    char *v = from_view(), *orig = from_view(), why[300] = "";
    uint64_t len = 20480;
    int r = apply(v, &len, why, sizeof why);
    if (r == 0) fail_msg("%s: applied", w);
    if (!strstr(why, cases[c].says))
      fail_msg("%s: says '%s', want '%s'", w, why, cases[c].says);
    // Refused before anything was written, but for the last check (the
    // header it wrote), which the caller's view drop covers.
    if (strcmp(w, "to_checksum")) assert_memory_equal(v, orig, VIEW);
    assert_int_equal(len, 20480);
    free(v);
    free(orig);
  }
}

static int setup(void **state) {
  (void)state;
  fd = mkstemp(path);
  return fd < 0;
}

static int teardown(void **state) {
  (void)state;
  close(fd);
  unlink(path);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_capture),
      cmocka_unit_test(test_shrink),
      cmocka_unit_test(test_hostile),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
