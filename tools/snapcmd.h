// snapcmd.h: the tool on snapshot directories and running programs
// (snapcmd.c); exit statuses as poolcmd.h's.
#ifndef MMPOOL_TOOLS_SNAPCMD_H
#define MMPOOL_TOOLS_SNAPCMD_H

// 1 when path is a directory (then info and check read it as a snapshot).
int snapcmd_is_dir(const char *path);
// The manifest, each image's facts and the pointers between the pools.
int snapcmd_info(const char *dir, int json);
// The manifest, each image against it, and each image as `check` does.
int snapcmd_check(const char *dir);
// The picture of every image, one under the other (poolcmd_map_many).
int snapcmd_map(const char *dir, const char *out);
// Sends process pid the signal its configuration takes snapshots on and
// waits up to wait_s seconds for the new manifest.
int snapcmd_snapshot(int pid, int wait_s);

#endif
