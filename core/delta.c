// delta.c: the delta files of incremental snapshots (see delta.h).
#include "delta.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/uio.h>

#include "fmt.h"
#include "hash.h"
#include "os.h"
#include "poolfile.h"

#define DELTA_SEED 0x64656c74u

#define WHY(...)                                                              \
  do {                                                                        \
    fmt_format(why, why_len, __VA_ARGS__);                                    \
    return -EUCLEAN;                                                          \
  } while (0)

RARE int delta_check_header(const struct delta_header *dh, uint64_t file_size,
                            char *why, size_t why_len) {
  if (file_size < DELTA_DATA_OFF ||
      memcmp(dh->magic, DELTA_MAGIC, sizeof dh->magic) != 0) {
    fmt_format(why, why_len, "not an mmpool snapshot delta");
    return -ENOEXEC;
  }
  if (dh->version != DELTA_VERSION || dh->size != sizeof *dh) {
    fmt_format(why, why_len, "delta version %u (this build reads %u)",
               dh->version, DELTA_VERSION);
    return -ENOEXEC;
  }
  uint64_t room = file_size - DELTA_DATA_OFF;
  if (dh->data_bytes > room ||
      dh->nrec > (room - dh->data_bytes) / sizeof(struct delta_rec) ||
      dh->nrec * sizeof(struct delta_rec) != room - dh->data_bytes)
    WHY("delta of %llu bytes says %llu records and %llu bytes of data",
        (unsigned long long)file_size, (unsigned long long)dh->nrec,
        (unsigned long long)dh->data_bytes);
  return 0;
}

// Where an image's header keeps its checksum.
#define HDR_SUM offsetof(struct poolfile_header, checksum)

// The records of fd, a batch at a time, into buf. The checksum is chained
// over the same batches by the writer (delta_out_end).
#define BATCH 170  // 4080 bytes on the stack
RARE static int read_recs(int fd, const struct delta_header *dh, uint64_t i,
                          struct delta_rec *buf, uint64_t *n) {
  *n = dh->nrec - i < BATCH ? dh->nrec - i : BATCH;
  return os_pread_full(fd, buf, (size_t)*n * sizeof *buf,
                       DELTA_DATA_OFF + dh->data_bytes + i * sizeof *buf);
}

RARE int delta_apply(int fd, const struct delta_header *dh, char *view,
                     uint64_t view_len, uint64_t *len, char *why,
                     size_t why_len) {
  char eb[32];
  // The image it applies to: its length and header checksum (the field at
  // the header's end of its identity part, poolfile.h).
  uint64_t cur_sum;
  if (*len < 4096 || dh->from_length != *len)
    WHY("applies to an image of %llu bytes, not of %llu (a delta of another "
        "chain, or out of order)", (unsigned long long)dh->from_length,
        (unsigned long long)*len);
  memcpy(&cur_sum, view + HDR_SUM, sizeof cur_sum);
  if (dh->from_checksum != cur_sum)
    WHY("applies to the image whose header checksum is 0x%llx, not 0x%llx "
        "(a delta of another chain, or out of order)",
        (unsigned long long)dh->from_checksum, (unsigned long long)cur_sum);
  if (dh->length < 4096 || dh->length > view_len)
    WHY("makes an image of %llu bytes (at most %llu here)",
        (unsigned long long)dh->length, (unsigned long long)view_len);
  // Pass 1: the checksum, and every record in bounds, in order, the data
  // accounted for.
  struct delta_rec recs[BATCH];
  uint64_t sum = hash_bytes(dh, offsetof(struct delta_header, checksum),
                            DELTA_SEED);
  uint64_t end = 0, data = 0, n = 0;
  for (uint64_t i = 0; i < dh->nrec; i += n) {
    int r = read_recs(fd, dh, i, recs, &n);
    if (r) {
      fmt_format(why, why_len, "cannot read its records: %s",
                 os_strerror(-r, eb, sizeof eb));
      return r;
    }
    sum = hash_bytes(recs, (size_t)n * sizeof *recs, sum);
    for (uint64_t k = 0; k < n; k++) {
      const struct delta_rec *d = &recs[k];
      if ((d->kind != DELTA_REC_DATA && d->kind != DELTA_REC_ZERO) ||
          d->reserved || d->len == 0 || d->off < end ||
          d->off > dh->length || d->len > dh->length - d->off)
        WHY("record %llu ([0x%llx, +0x%llx), kind %u) is out of bounds or "
            "out of order", (unsigned long long)(i + k),
            (unsigned long long)d->off, (unsigned long long)d->len, d->kind);
      end = d->off + d->len;
      if (d->kind == DELTA_REC_DATA) data += d->len;
    }
  }
  if (sum != dh->checksum) WHY("delta checksum mismatch");
  if (data != dh->data_bytes)
    WHY("its records hold %llu bytes of data, its header says %llu",
        (unsigned long long)data, (unsigned long long)dh->data_bytes);
  // Pass 2: the image it makes. Past a shorter length nothing stays. The
  // records are read again: each is held to its bounds again, in case the
  // file changed since (the view is then dropped, never overrun).
  if (dh->length < *len) memset(view + dh->length, 0, *len - dh->length);
  uint64_t at = DELTA_DATA_OFF;
  end = 0;
  for (uint64_t i = 0; i < dh->nrec; i += n) {
    int r = read_recs(fd, dh, i, recs, &n);
    for (uint64_t k = 0; !r && k < n; k++) {
      const struct delta_rec *d = &recs[k];
      if (d->off < end || d->off > dh->length ||
          d->len > dh->length - d->off)
        WHY("changed while it was being read");
      end = d->off + d->len;
      if (d->kind == DELTA_REC_ZERO) {
        memset(view + d->off, 0, d->len);
      } else {
        r = os_pread_full(fd, view + d->off, d->len, at);
        at += d->len;
      }
    }
    if (r) {
      fmt_format(why, why_len, "cannot read it: %s",
                 os_strerror(-r, eb, sizeof eb));
      return r;
    }
  }
  memcpy(&cur_sum, view + HDR_SUM, sizeof cur_sum);
  if (cur_sum != dh->to_checksum)
    WHY("the header it writes has checksum 0x%llx, it says 0x%llx",
        (unsigned long long)cur_sum, (unsigned long long)dh->to_checksum);
  *len = dh->length;
  return 0;
}

RARE void delta_seal(struct delta_header *dh, const struct delta_rec *recs) {
  uint64_t sum = hash_bytes(dh, offsetof(struct delta_header, checksum),
                            DELTA_SEED);
  for (uint64_t i = 0; i < dh->nrec; i += BATCH)
    sum = hash_bytes(&recs[i],
                     (size_t)(dh->nrec - i < BATCH ? dh->nrec - i : BATCH) *
                         sizeof *recs,
                     sum);
  dh->checksum = sum;
}

// ---------------------------------------------------------------------------
// Sequential output (the snapshot writer, a process of its own with one
// thread): a delta's data, a new image's pages

#define IOV_BATCH 256
#define DIO_ALIGN 4096u
static struct {
  int fd;
  int direct;               // fd has O_DIRECT on
  uint64_t at;              // the file offset of the next byte of data
  uint32_t nrec;
  int niov;
  uint64_t iov_at;          // the file offset of iov[0]
  struct iovec iov[IOV_BATCH];
} out;
// In .bss: no page of it is touched outside a snapshot writer.
static struct delta_rec recs_out[DELTA_RECS_MAX];

// 1 when every piece of the batch is aligned for direct I/O.
RARE static int aligned(void) {
  if (out.iov_at % DIO_ALIGN) return 0;
  for (int i = 0; i < out.niov; i++)
    if ((uintptr_t)out.iov[i].iov_base % DIO_ALIGN ||
        out.iov[i].iov_len % DIO_ALIGN)
      return 0;
  return 1;
}

// The batch to write, gathered: the writer's own memory, in .bss (no page
// of it is touched outside a writer).
#define STAGE (1u << 20)
static char stage[STAGE] __attribute__((aligned(4096)));

// The data goes to the device with direct I/O where it can, from the
// stage: through the page cache each page written would first take a new
// page of memory there, and so would a direct write from the program's
// pages themselves (this copy shares them with the program, and the
// kernel copies a shared page before it lets a device read it). New pages
// are what costs here: in this project's VMs each is a fault in the
// hypervisor (1 GiB at 10 %: 280 ms buffered, 120 direct from the pages,
// against 7 ms per 10 MiB for the device; docs/snapshots.md "Costs"). The
// stage's 256 pages are taken once per writer. Buffered pieces also push
// the program's file pages out of the cache. A file system without direct
// I/O, or a piece not aligned for it, is written buffered.
RARE static int flush(void) {
  int r = 0;
  uint64_t len = out.at - out.iov_at;
  if (out.niov) {
    int want = out.direct >= 0 && len <= STAGE && aligned();
    if (want != out.direct && out.direct >= 0 &&
        os_set_direct(out.fd, want) != 0)
      want = out.direct = -1;  // no direct I/O here: buffered from now on
    if (out.direct >= 0) out.direct = want;
    if (want == 1) {
      uint64_t k = 0;
      for (int i = 0; i < out.niov; i++) {
        memcpy(stage + k, out.iov[i].iov_base, out.iov[i].iov_len);
        k += out.iov[i].iov_len;
      }
      r = os_pwrite_all(out.fd, stage, len, out.iov_at);
      if (r == -EINVAL) {
        // Refused after all (an alignment this device wants larger):
        // buffered from now on.
        os_set_direct(out.fd, 0);
        out.direct = -1;
        r = os_pwrite_all(out.fd, stage, len, out.iov_at);
      }
    } else {
      r = os_pwritev_all(out.fd, out.iov, out.niov, out.iov_at);
    }
  }
  out.niov = 0;
  out.iov_at = out.at;
  return r;
}

RARE void stage_begin(int fd, uint64_t off) {
  out.fd = fd;
  out.direct = 0;
  out.at = out.iov_at = off;
  out.niov = 0;
}

RARE int stage_put(const void *src, uint64_t len, uint64_t off) {
  int r = 0;
  if (off != out.at) {  // a gap (a hole in the file): a new batch
    r = flush();
    out.at = out.iov_at = off;
  }
  const char *p = src;
  while (!r && len) {
    // A batch fills the stage at most.
    uint64_t n = len < STAGE ? len : STAGE;
    if (out.niov && out.at - out.iov_at + n > STAGE && (r = flush()) != 0)
      break;
    struct iovec *last = out.niov ? &out.iov[out.niov - 1] : NULL;
    if (last && (const char *)last->iov_base + last->iov_len == p) {
      last->iov_len += n;
    } else {
      if (out.niov == IOV_BATCH && (r = flush()) != 0) break;
      out.iov[out.niov++] = (struct iovec){(void *)p, n};
    }
    out.at += n;
    p += n;
    len -= n;
  }
  return r;
}

RARE int stage_end(void) {
  int r = flush();
  if (!r && out.direct == 1) r = os_set_direct(out.fd, 0);
  out.direct = 0;
  return r;
}

// A capture (delta.h): the deltas' bytes from DELTA_DATA_OFF on, one after
// the other in buf, each from a multiple of DIO_ALIGN. The copies go
// through the kernel (os_copy_own, IOV_BATCH ranges a call): a page the
// program made unreadable (mprotect of a block it owns) fails the capture
// instead of faulting in the allocator.
static struct {
  char *buf;
  uint64_t cap, used;
  uint64_t start;  // the current delta's
  int refused;     // the kernel refuses the copies (a seccomp filter)
  unsigned n;      // copies not made yet
  uint64_t bytes;  // ... their bytes
  struct iovec dst[IOV_BATCH], src[IOV_BATCH];
} capt;

// The copies gathered, made. 0 or a negative errno.
RARE static int capture_flush(void) {
  long r = capt.n ? os_copy_own(capt.dst, capt.src, capt.n) : 0;
  int ok = !capt.n || r == (long)capt.bytes;
  if (r == -EPERM || r == -ENOSYS) capt.refused = 1;
  capt.n = 0;
  capt.bytes = 0;
  return ok ? 0 : r < 0 ? (int)r : -EFAULT;
}

RARE void delta_capture_begin(char *buf, uint64_t cap) {
  capt.buf = buf;
  capt.cap = cap;
  capt.used = capt.start = 0;
  capt.n = 0;
  capt.bytes = 0;
}

RARE void delta_capture_end(void) { capt.buf = NULL; }

RARE int delta_capture_usable(void) { return !capt.refused; }

RARE const char *delta_captured(uint64_t *len) {
  *len = capt.used - capt.start;
  return capt.buf + capt.start;
}

RARE int delta_out_begin(int fd) {
  out.nrec = 0;
  if (capt.buf) {
    out.fd = fd;
    out.at = DELTA_DATA_OFF;
    capt.start = (capt.used + DIO_ALIGN - 1) & ~(uint64_t)(DIO_ALIGN - 1);
    if (capt.start > capt.cap) return -ENOBUFS;
    capt.used = capt.start;
    return 0;
  }
  stage_begin(fd, DELTA_DATA_OFF);
  return 0;
}

// In a capture: len bytes from src to be copied at the end of buf.
RARE static int capture_put(const void *src, uint64_t len) {
  if (len > capt.cap - capt.used) return -ENOBUFS;
  char *dst = capt.buf + capt.used;
  struct iovec *ld = capt.n ? &capt.dst[capt.n - 1] : NULL;
  struct iovec *ls = capt.n ? &capt.src[capt.n - 1] : NULL;
  if (ld && (char *)ld->iov_base + ld->iov_len == dst &&
      (const char *)ls->iov_base + ls->iov_len == (const char *)src) {
    ld->iov_len += len;
    ls->iov_len += len;
  } else {
    int r = capt.n == IOV_BATCH ? capture_flush() : 0;
    if (r) return r;
    capt.dst[capt.n] = (struct iovec){dst, len};
    capt.src[capt.n++] = (struct iovec){(void *)src, len};
  }
  capt.bytes += len;
  capt.used += len;
  return 0;
}

// A record, merged with the one before when it continues it.
RARE static int add(uint64_t off, uint64_t len, uint32_t kind) {
  if (!len) return 0;
  if (out.nrec) {
    struct delta_rec *p = &recs_out[out.nrec - 1];
    if (p->kind == kind && p->off + p->len == off) {
      p->len += len;
      return 0;
    }
  }
  if (out.nrec == DELTA_RECS_MAX) return -E2BIG;
  recs_out[out.nrec++] = (struct delta_rec){off, len, kind, 0};
  return 0;
}

RARE int delta_out_data(uint64_t off, const void *src, uint64_t len) {
  int r = add(off, len, DELTA_REC_DATA);
  if (r || !capt.buf) return r ? r : stage_put(src, len, out.at);
  r = capture_put(src, len);
  if (!r) out.at += len;
  return r;
}

RARE int delta_out_zero(uint64_t off, uint64_t len) {
  return add(off, len, DELTA_REC_ZERO);
}

RARE int delta_out_end(struct delta_header *dh) {
  // The records and the header are small and not aligned: buffered.
  int r = capt.buf ? 0 : stage_end();
  if (r) return r;
  memcpy(dh->magic, DELTA_MAGIC, sizeof dh->magic);
  dh->version = DELTA_VERSION;
  dh->size = sizeof *dh;
  dh->nrec = out.nrec;
  dh->data_bytes = out.at - DELTA_DATA_OFF;
  memset(dh->reserved, 0, sizeof dh->reserved);
  size_t tlen = (size_t)out.nrec * sizeof *recs_out;
  delta_seal(dh, recs_out);
  if (capt.buf) {
    r = capture_put(recs_out, tlen);
    return r ? r : capture_flush();
  }
  r = os_pwrite_all(out.fd, recs_out, tlen, out.at);
  if (!r) r = os_pwrite_all(out.fd, dh, sizeof *dh, 0);
  return r;
}

RARE int delta_capture_write(int fd, const struct delta_header *dh,
                             const char *area, uint64_t len) {
  // The whole blocks from the buffer straight to the device: the buffer is
  // this process's own (no page shared with a copy), and already has its
  // pages, so nothing new is taken; the last partial block, and the
  // header, through the page cache.
  uint64_t direct = len & ~(uint64_t)(DIO_ALIGN - 1);
  if ((uintptr_t)area % DIO_ALIGN) direct = 0;
  int r = 0;
  if (direct && os_set_direct(fd, 1) == 0) {
    r = os_pwrite_all(fd, area, direct, DELTA_DATA_OFF);
    os_set_direct(fd, 0);
    if (r == -EINVAL) r = os_pwrite_all(fd, area, direct, DELTA_DATA_OFF);
  } else {
    r = os_pwrite_all(fd, area, direct, DELTA_DATA_OFF);
  }
  if (!r && len > direct)
    r = os_pwrite_all(fd, area + direct, len - direct, DELTA_DATA_OFF + direct);
  if (!r) r = os_pwrite_all(fd, dh, sizeof *dh, 0);
  return r;
}
