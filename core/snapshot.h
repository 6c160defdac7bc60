// snapshot.h: snapshots of all the pools of a process at one instant.
//
// Blocks of one pool may point into another (the preload library routes by
// size, library and thread), so a snapshot is of the whole set: a directory
// holding one image per open pool, each itself a pool file (attachable,
// checkable with `mmpool check`), and a manifest that names them. The
// program pauses only while the set is held (pool_hold_all) and a copy of
// the process is made; that copy (a quiet child, os_spawn_quiet) writes the
// images while the program runs on. Shared file pools are the exception:
// their pages are the file's, shared with the child, so they are copied
// while the set is held, and their pause grows with them.
//
// Atomicity (docs/snapshots.md): new images get names no manifest names
// yet (NAME.SERIAL.pool); they are written and synced, then the manifest
// is written to "manifest.tmp", synced, renamed over "manifest" and the
// directory synced; only then are the previous images hidden
// (SNAP_KEPT_PREFIX). A crash at any point leaves the previous manifest
// with its images, or the new one with its images; what a crashed writer
// left is removed by the next one.
//
// Incremental snapshots (core/dirty.h, core/delta.h, docs/snapshots.md)
// write, for a pool whose pages are tracked, only a delta: the changes
// since the previous snapshot, in a new file (NAME.SERIAL.delta) that the
// manifest names after the pool's image and its earlier deltas. A chain is
// cut (the next image written whole) when it is SNAP_CHAIN_MAX long or its
// deltas hold a quarter of the image's bytes. A whole image renames the
// pool's hidden image (the one it replaced last time), once it is checked
// to be the file its writer left, to its new name and rewrites it in
// place. The files the current manifest names are never touched.
#ifndef MMPOOL_SNAPSHOT_H
#define MMPOOL_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "compiler.h"
#include "mmpool.h"

#define SNAP_MAGIC "MMPSNAP"   // 8 bytes with the NUL
#define SNAP_VERSION 2           // 1: no chains (read as a version 2)
#define SNAP_MANIFEST "manifest"
#define SNAP_MANIFEST_TMP "manifest.tmp"
#define SNAP_FILE_MAX 80       // an image's file name, with its NUL
// The previous snapshot's images kept for an incremental rewrite.
#define SNAP_KEPT_PREFIX ".prev."
#define SNAP_CHAIN_MAX 16      // deltas after one image

enum { SNAP_POOL_ANON = 1, SNAP_POOL_SHARED = 2, SNAP_POOL_PRIVATE = 3 };
enum { SNAP_HOW_FULL = 1, SNAP_HOW_INCREMENTAL = 2 };

// One pool of the set. Everything here repeats (or names) what the image's
// own header says, so that a manifest and an image that do not belong
// together are told apart.
struct snap_entry {
  char name[MMPOOL_NAME_MAX + 1]; // the pool's name
  char file[SNAP_FILE_MAX];       // the image, in the manifest's directory
  uint64_t base, capacity;        // as the image's header says
  uint64_t length;                // the image's size in bytes
  uint64_t generation;
  uint64_t uuid[2];
  uint64_t header_checksum;       // the image header's checksum field
  uint32_t kind;                  // SNAP_POOL_*
  // How the image was written: SNAP_HOW_INCREMENTAL, or SNAP_HOW_FULL with
  // the reason (DIRTY_*, core/dirty.h) in bits 8-15; 0 in the manifests of
  // builds before incremental snapshots.
  uint32_t how;
};
_Static_assert(sizeof(struct snap_entry) == 192, "snap_entry layout");

// The manifest file: this struct, whole (its size is fixed), little endian.
struct snap_manifest {
  char magic[8];                  // SNAP_MAGIC
  uint32_t version;               // SNAP_VERSION
  uint32_t size;                  // sizeof(struct snap_manifest)
  uint32_t npools;                // entries used, <= MMPOOL_MAX_POOLS
  uint32_t pid;                   // the process that took it
  uint64_t serial;                // 1, 2, ... in this directory
  uint64_t taken;                 // seconds since 1970
  uint64_t pause_ns;              // how long the program was held
  uint64_t bytes;                 // bytes of all images written
  char program[16];               // the program's name
  // Incremental snapshots (0 in manifests of older builds): the pools whose
  // image was rewritten incrementally (0: a full snapshot), why the others
  // were written whole (the weightiest DIRTY_* reason), and the bytes the
  // images hold, which a full snapshot writes (bytes above is what this one
  // wrote).
  uint32_t incremental;
  uint32_t why_full;
  uint64_t image_bytes;
  uint8_t reserved[32];
  struct snap_entry pool[MMPOOL_MAX_POOLS];
  // Version 2: the deltas to apply to each pool's image, in order, by
  // serial (file NAME.SERIAL.delta); none for images written whole since.
  struct snap_chain {
    uint32_t n;                   // <= SNAP_CHAIN_MAX
    uint32_t reserved;
    uint64_t bytes;               // of the delta files, together
    uint64_t serial[SNAP_CHAIN_MAX];
  } chain[MMPOOL_MAX_POOLS];
  uint64_t checksum;              // hash_bytes of everything above
};
// A version 1 manifest: the same without the chains.
#define SNAP_V1_SIZE (offsetof(struct snap_manifest, chain) + 8)

// The file name of delta serial of pool name (NAME.SERIAL.delta).
void snap_delta_name(char *out, size_t len, const char *name,
                     uint64_t serial) HIDDEN;

// Checks a manifest read from a file of file_size bytes: magic, version,
// size, checksum, counts, every name and file name, the chains. A version 1
// manifest (file_size SNAP_V1_SIZE) is converted in place to version 2
// first. 0, or -EUCLEAN / -ENOEXEC with one line in why.
int snap_manifest_check(struct snap_manifest *m, uint64_t file_size,
                        char *why, size_t why_len) HIDDEN;
void snap_manifest_seal(struct snap_manifest *m) HIDDEN;
// Puts m in place as the directory dfd's manifest, atomically: written to
// manifest.tmp, synced, renamed over manifest, then the directory synced.
// 0, or a negative errno; *placed is 1 once the rename is done (then only
// the directory's sync failed: readers see the new manifest). Raw system
// calls only (the snapshot writer uses it).
int snap_manifest_install(int dfd, const struct snap_manifest *m,
                          int *placed) HIDDEN;
struct poolfile_header;
// What of header h (of a file of file_size bytes; 0: an attached pool,
// whose generation and header checksum are its open's) is not what entry
// e says: "base" (not checked when moved), "capacity", "uuid", "length",
// "generation", "header checksum"; NULL when it is e's image.
const char *snap_entry_differs(const struct snap_entry *e,
                               const struct poolfile_header *h,
                               uint64_t file_size, int moved) HIDDEN;

// Takes a snapshot of every open pool into the directory dir (made, mode
// 0700, when missing; it must be the effective user's and not writable by
// others). Returns when the snapshot is durable, or has failed and the
// previous one is intact. 0, or a negative errno with the reason left by
// log_fail. Other threads are held only for the pause.
int snapshot_take(const char *dir) HIDDEN;

// Reads and checks dir's manifest (no link followed in dir's path): 0, or
// a negative errno with the reason left by log_fail (-ENOENT: no
// snapshot there).
int snapshot_read(const char *dir, struct snap_manifest *m) HIDDEN;

// 0 when the pool p, just opened from e's image (or its moved copy), is the
// pool e names (base unless moved, capacity, uuid); else -EUCLEAN with the
// reason left by log_fail.
struct mmpool;
int snapshot_entry_check(const struct snap_entry *e, struct mmpool *p,
                         int moved) HIDDEN;

// Opens image i of snapshot m (read from dir) for reading: its file with
// its deltas applied (inspect_open_deltas), checked against the entry. 0,
// or a negative errno with one line in why naming the file at fault.
struct inspect;
int snapshot_image_open(struct inspect *in, const char *dir,
                        const struct snap_manifest *m, uint32_t i, char *why,
                        size_t why_len) HIDDEN;
// The same with inspect_open's flags (INSPECT_TRUSTED: what is to be
// attached).
int snapshot_image_open_as(struct inspect *in, const char *dir,
                           const struct snap_manifest *m, uint32_t i,
                           unsigned flags, char *why, size_t why_len) HIDDEN;

// Restore: the copies a snapshot m read from dir needs in this process,
// made in dir as files[i] for pool i (".relocated-PID-I.pool"; "" for a
// pool attached from its own image): with relocate, when the pools'
// ranges are not all free here, the set is moved (every pool whose range
// is taken to a free range, the others staying; the files copied are held
// to the attach rules of the trust model, another user's allowed with
// trust_any) and every pool copied
// with its pointers moved. Else an image with deltas (core/delta.h) is
// attached with them applied at attach (snapshot_deltas), unless its chain
// shortens the image somewhere: then it is copied with them applied. The
// caller attaches the copies, privately, and removes them; a snapshot
// taken into dir later removes leftovers. Returns the number of pools
// moved (0: every range is free or relocate is 0), with *changed the words
// changed, or a negative errno with the reason left by log_fail (the
// copies made are removed).
int snapshot_relocated(const char *dir, const struct snap_manifest *m,
                       int relocate, int trust_any,
                       char (*files)[SNAP_FILE_MAX], uint64_t *changed) HIDDEN;
// What a restore gives pool_open for entry i of m read from dir when
// snapshot_relocated made no copy of it: its deltas to apply at attach
// (d->n 0: none), named in names, which must outlive d's use.
struct pool_deltas;
void snapshot_deltas(const char *dir, const struct snap_manifest *m,
                     uint32_t i, struct pool_deltas *d,
                     char (*names)[SNAP_FILE_MAX]) HIDDEN;

// Removes the copies snapshot_relocated made (once attached: a mapping
// keeps its file).
void snapshot_relocated_drop(const char *dir, uint32_t n,
                             char (*files)[SNAP_FILE_MAX]) HIDDEN;

// Makes dir (as snapshot_take does) and keeps it open and locked for the
// life of the process: its snapshots go there, and no other process's
// (a program it execs that inherits the configuration gets -EBUSY).
int snapshot_claim(const char *dir) HIDDEN;

struct snap_stats {
  uint64_t taken, failed;
  uint64_t pause_last_ns, pause_max_ns, pause_total_ns;
  uint64_t bytes;
  // Of those taken: incremental ones (at least one image rewritten
  // incrementally) and the bytes they wrote; the last one's kind and bytes.
  uint64_t incremental, bytes_incremental;
  // ... and those the process wrote itself, without a copy of the process
  // (core/snapshot.c, "Captures").
  uint64_t captured;
  int last_incremental;
  uint64_t last_bytes, last_image_bytes;
};
// Incremental snapshots on (the default) or off (snapshot-incremental=no:
// every image written whole, nothing tracked). For the process.
void snapshot_set_incremental(int on) HIDDEN;
// For tests (they link the static core): called while the set is held,
// after the scan of written pages and before the writer is made, as a
// thread that runs through the hold would write then.
extern void (*snapshot_at_hold)(void) HIDDEN;
// For tests: called in a capture (core/snapshot.c) once its copies are
// made, before it checks that nothing was written meanwhile.
extern void (*snapshot_at_capture)(void) HIDDEN;
void snapshot_stats(struct snap_stats *out) HIDDEN;
// Waits for the writers of earlier snapshots that are still ending (their
// exit is not waited for when the snapshot is taken), so that a program
// exec starts in this process does not inherit them as children. The
// preload library calls it before an exec.
void snapshot_reap_writers(void) HIDDEN;
// For snapshots the program did not ask for (signal, interval, exit): 1
// when err (0: success) differs from the last failure's, so that a cause
// is said once, not at every try.
int snapshot_failed_once(int err) HIDDEN;

#endif
