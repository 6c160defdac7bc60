// poolcmd.h: the tool's commands that read pool files (poolcmd.c): info,
// check, map, upgrade. Each takes the checked arguments and returns the
// exit status (see mmpool.c's header comment for the statuses).
#ifndef MMPOOL_TOOLS_POOLCMD_H
#define MMPOOL_TOOLS_POOLCMD_H

enum {
  POOLCMD_OK = 0,
  POOLCMD_BAD = 1,  // not sound, not a readable pool file, or not done
  POOLCMD_TOOL = 125, // standard output cannot be written
};

int poolcmd_info(const char *path, int json);
int poolcmd_check(const char *path);
// The same for image i of snapshot m read from dir (with its deltas; path
// is its image's, for the lines said), or for path alone when m is NULL.
struct snap_manifest;
int poolcmd_check_image(const char *path, const char *dir,
                        const struct snap_manifest *m, unsigned i);
int poolcmd_map(const char *path, const char *out);
// One picture of several pool files, one under the other, with a title
// line (or none): the map of a snapshot (m read from dir: image i with its
// deltas; NULL: the files of paths).
int poolcmd_map_many(const char *const *paths, unsigned n, const char *title,
                     const char *out, const char *dir,
                     const struct snap_manifest *m);
int poolcmd_upgrade(const char *path);
// fsync of the directory dir (a rename in it made durable): 0 or -errno.
int poolcmd_fsync_dir(const char *dir);

#endif
