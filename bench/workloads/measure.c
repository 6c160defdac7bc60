/* measure OUT PRELOAD CMD [ARGS...]: runs CMD with LD_PRELOAD=PRELOAD
 * ("-": none) and writes "wall_s cpu_s maxrss_kib exit_code" to OUT: wall
 * time from fork to wait4, user+system CPU time and peak RSS of the child
 * and its descendants (wait4's rusage). A small C program rather than the
 * runner itself: Linux carries a process's peak RSS across fork and exec,
 * so a child forked from python3 would start with python's ~15 MiB; this
 * one starts with its own ~1 MiB. Links nothing but the C library; the
 * allocator is set in the child only. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s OUT PRELOAD|- CMD [ARGS...]\n", argv[0]);
    return 2;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid_t pid = fork();
  if (pid < 0) { perror("fork"); return 2; }
  if (pid == 0) {
    if (argv[2][0] != '-' || argv[2][1]) setenv("LD_PRELOAD", argv[2], 1);
    else unsetenv("LD_PRELOAD");
    execvp(argv[3], argv + 3);
    perror(argv[3]);
    _exit(127);
  }
  int st; struct rusage ru;
  if (wait4(pid, &st, 0, &ru) < 0) { perror("wait4"); return 2; }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  FILE *f = fopen(argv[1], "w");
  if (!f) { perror(argv[1]); return 2; }
  fprintf(f, "%.6f %.6f %ld %d\n",
          (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
          (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
              (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6,
          ru.ru_maxrss,
          WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
  fclose(f);
  return 0;
}
