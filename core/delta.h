// delta.h: the delta files of incremental snapshots (docs/snapshots.md,
// "Incremental snapshots").
//
// An incremental snapshot does not touch the images of the snapshot before
// it: for each pool it writes, in one sequential file, the byte ranges of
// the image that changed since the previous snapshot (the pages written,
// the header, the descriptors) and the ranges that became zeros (spans
// freed, pages purged). The manifest names, per pool, a whole image (a pool
// file) and the chain of deltas to apply to it in order. Sequential writes
// and one short file to sync cost a fraction of rewriting scattered pages
// in place (1 GiB, 1 % of the pages: docs/snapshots.md "Costs").
//
// Layout, little endian:
//   [0, 4096)                        struct delta_header
//   [4096, 4096 + data_bytes)        the data of the DATA records, in order
//   [4096 + data_bytes, file end)    nrec struct delta_rec, sorted by off
//
// A delta says which image it applies to (that image's length and header
// checksum) and which it makes; the records lie inside the image it makes
// and do not overlap. Its checksum covers the header and the records, not
// the data (an image's data has none either). Everything is checked before
// one byte is applied: a delta from another chain, out of order, truncated
// or lying is refused with a reason.
#ifndef MMPOOL_DELTA_H
#define MMPOOL_DELTA_H

#include <stddef.h>
#include <stdint.h>

#include "compiler.h"

#define DELTA_MAGIC "MMPDELT"  // 8 bytes with the NUL
#define DELTA_VERSION 1u
#define DELTA_DATA_OFF 4096u   // where the records' data begins

enum { DELTA_REC_DATA = 1, DELTA_REC_ZERO = 2 };

struct delta_rec {
  uint64_t off, len;    // a range of the image
  uint32_t kind;        // DELTA_REC_*
  uint32_t reserved;    // 0
};
_Static_assert(sizeof(struct delta_rec) == 24, "delta_rec layout");

struct delta_header {
  char magic[8];            // DELTA_MAGIC
  uint32_t version;         // DELTA_VERSION
  uint32_t size;            // sizeof(struct delta_header)
  uint64_t serial;          // the snapshot that wrote it
  uint64_t uuid[2];         // the pool's
  uint64_t from_length;     // the image it applies to: its length
  uint64_t from_checksum;   // ... and its header's checksum field
  uint64_t length;          // the image it makes
  uint64_t to_checksum;
  uint64_t nrec;            // records
  uint64_t data_bytes;      // bytes of data, from DELTA_DATA_OFF
  uint8_t reserved[32];
  uint64_t checksum;        // delta_seal: this header and the records
};
_Static_assert(sizeof(struct delta_header) == 128, "delta_header layout");

// The checks of a header read from a file of file_size bytes that need
// nothing else: magic, version, size, the counts against the file's size.
// 0, or -ENOEXEC / -EUCLEAN with one line in why.
int delta_check_header(const struct delta_header *dh, uint64_t file_size,
                       char *why, size_t why_len) HIDDEN;

// Applies the delta open as fd (header dh, checked by delta_check_header)
// to the image in view (view_len bytes, the first *len of them the image's,
// the rest zeros): checks that it applies to that image (*len, the header
// checksum at the view's start), its checksum and every record, then
// writes the records and cuts the image to dh->length (zeros past it).
// 0 with *len = dh->length, or a negative errno with one line in why
// (the view is then half changed: the caller drops it).
int delta_apply(int fd, const struct delta_header *dh, char *view,
                uint64_t view_len, uint64_t *len, char *why,
                size_t why_len) HIDDEN;

// Sets dh->checksum for dh and its dh->nrec records recs (as they lie in
// the file).
void delta_seal(struct delta_header *dh, const struct delta_rec *recs) HIDDEN;

// Sequential output of the snapshot writer (raw system calls, no
// allocation, one at a time in a process): pieces given at ascending file
// offsets (a gap leaves a hole), gathered into batches of 1 MiB and
// written with O_DIRECT where the file system and the alignment allow
// (core/delta.c says why), buffered otherwise. The bytes of src are read
// when their batch is written: they must stay as they are until stage_end,
// which writes what is left and turns O_DIRECT off again. 0 or a negative
// errno.
void stage_begin(int fd, uint64_t off) HIDDEN;
int stage_put(const void *src, uint64_t len, uint64_t off) HIDDEN;
int stage_end(void) HIDDEN;

// Writing one (the snapshot writer: raw system calls, no allocation; one
// at a time in a process). The records are given in ascending order of
// offset; a DATA record's bytes go through the stage (stage_put), so src
// must stay as it is until delta_out_end.
int delta_out_begin(int fd) HIDDEN;
int delta_out_data(uint64_t off, const void *src, uint64_t len) HIDDEN;
int delta_out_zero(uint64_t off, uint64_t len) HIDDEN;
// Writes the records and the header (dh: every field but magic, version,
// size, nrec, data_bytes and checksum, which this fills). 0, a negative
// errno, or -E2BIG when the records did not fit (DELTA_RECS_MAX: the
// changes are too scattered for a delta; write the image whole).
int delta_out_end(struct delta_header *dh) HIDDEN;
#define DELTA_RECS_MAX 32768u

// A capture: a snapshot taken in the process itself, under the hold, with
// no copy of the process (core/snapshot.c). Between delta_capture_begin
// and delta_capture_end, the deltas written with delta_out_* go to buf
// (cap bytes, aligned to 4096) instead of their files: a DATA record's
// bytes are copied by the time delta_out_end returns (the pool changes
// again after the hold; the copies go through the kernel, gathered, and a
// page the program made unreadable fails with -EFAULT instead of
// faulting), and delta_out_end puts the records after them and fills the
// header without writing anything. -ENOBUFS when buf is full (nothing is
// written: take a copy of the process instead). Then delta_captured says
// where the bytes of the delta just ended lie (the file's from
// DELTA_DATA_OFF on: data and records), and delta_capture_write writes
// them with header dh to fd, after the hold. The buffer is written from
// straight to the device where the file system allows it. 0 or a negative
// errno.
void delta_capture_begin(char *buf, uint64_t cap) HIDDEN;
void delta_capture_end(void) HIDDEN;
// 0 once the kernel refused a capture's copies (process_vm_readv denied
// by a seccomp filter): no capture is worth trying in this process.
int delta_capture_usable(void) HIDDEN;
const char *delta_captured(uint64_t *len) HIDDEN;
int delta_capture_write(int fd, const struct delta_header *dh,
                        const char *area, uint64_t len) HIDDEN;

#endif
