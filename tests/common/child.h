// child.h: cmocka helpers for tests that run programs in a scratch
// directory (scratch.h): a scratch file's path, a file's whole text, and a
// child run with a chosen environment, its stdout and stderr in files (or
// read back: child_capture).
// The including file defines _GNU_SOURCE first and includes cmocka.h and
// scratch.h before this.
#ifndef MMPOOL_TEST_CHILD_H
#define MMPOOL_TEST_CHILD_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

// scratch/name, asserted.
static char *path_in(const char *name) {
  char *p = scratch_path(name);
  assert_non_null(p);
  return p;
}

// The whole text of path (malloc'd); NULL when it cannot be opened.
static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&buf, &len);
  assert_non_null(m);
  int c;
  while ((c = fgetc(f)) != EOF)
    fputc(c, m);
  fclose(f);
  fclose(m);
  return buf;
}

// Runs argv[0] with argv and the test's environment less every MMPOOL_*
// variable (and LD_PRELOAD unless keep_preload), plus env (NULL-terminated
// "VAR=VALUE" strings, may be NULL). stdout goes to out (NULL: /dev/null),
// stderr to err. *pid receives the child's pid when pid is not NULL.
// Returns the exit status, or 128 + the signal.
static int child_run(const char *const *argv, const char *const *env,
                     int keep_preload, const char *out, const char *err,
                     pid_t *pid) {
  extern char **environ;
  char *envp[512];
  unsigned n = 0;
  for (char **e = environ; *e && n < 400; e++)
    if (strncmp(*e, "MMPOOL_", 7) &&
        (keep_preload || strncmp(*e, "LD_PRELOAD=", 11)))
      envp[n++] = *e;
  for (unsigned i = 0; env && env[i] && n < 511; i++)
    envp[n++] = (char *)env[i];
  envp[n] = NULL;
  pid_t p = fork();
  assert_true(p >= 0);
  if (p == 0) {
    int o = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) _exit(99);
    close(o), close(e);
    execve(argv[0], (char **)argv, envp);
    _exit(98);
  }
  int st;
  assert_int_equal(waitpid(p, &st, 0), p);
  if (pid) *pid = p;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// A child run's outcome with its output read back (child_capture).
struct child_res {
  int status;  // exit status, or 128 + signal
  char *out, *err;
};

static inline void child_res_free(struct child_res *r) {
  free(r->out);
  free(r->err);
}

// child_run with stdout and stderr captured in scratch files named after
// tag, then read back (both asserted readable).
static inline struct child_res child_capture(const char *const *argv,
                                            const char *const *env,
                                            const char *tag) {
  char out[600], err[600];
  snprintf(out, sizeof out, "%s/%s.out", scratch, tag);
  snprintf(err, sizeof err, "%s/%s.err", scratch, tag);
  struct child_res r;
  r.status = child_run(argv, env, 0, out, err, NULL);
  r.out = slurp(out);
  r.err = slurp(err);
  assert_non_null(r.out);
  assert_non_null(r.err);
  return r;
}

#endif
