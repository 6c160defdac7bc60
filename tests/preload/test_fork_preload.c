// test_fork_preload.c: fork under the preload library (PITFALLS 4.2, 4.3).
//
// 1. Threads read lines with getline (which reallocs while holding the
//    FILE's lock) and call fflush(NULL) (which holds the stdio list lock and
//    waits for FILE locks) while the main thread forks 200 times; each child
//    allocates and frees. A naive atfork handler deadlocks here.
// 2. A single-threaded process forks from a SIGALRM handler that interrupts
//    malloc/free, 100 times (glibc's tst-mallocfork2).
// A hang is turned into a failure by alarm().
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int stop;
static char path[] = "/tmp/mmpool-forkXXXXXX";

static void *reader(void *arg) {
  (void)arg;
  while (!stop) {
    FILE *f = fopen(path, "r");
    if (!f) continue;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
    }
    free(line);
    fclose(f);
  }
  return NULL;
}

static void *flusher(void *arg) {
  (void)arg;
  while (!stop) fflush(NULL);
  return NULL;
}

static int child_work(void) {
  void *k[100];
  for (int i = 0; i < 100; i++) k[i] = malloc(16 + i * 37);
  for (int i = 0; i < 100; i++) free(k[i]);
  FILE *f = fopen("/dev/null", "w");
  if (f) fclose(f);
  return 0;
}

static void test_fork_with_stdio_threads(void **state) {
  (void)state;
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w");
  for (int i = 0; i < 2000; i++) fprintf(f, "line %d with some text in it\n", i);
  fclose(f);
  pthread_t t[3];
  assert_int_equal(pthread_create(&t[0], NULL, reader, NULL), 0);
  assert_int_equal(pthread_create(&t[1], NULL, reader, NULL), 0);
  assert_int_equal(pthread_create(&t[2], NULL, flusher, NULL), 0);
  alarm(120);
  for (int i = 0; i < 200; i++) {
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0) {
      alarm(20);
      _exit(child_work());
    }
    int st;
    assert_int_equal(waitpid(p, &st, 0), p);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
  }
  alarm(0);
  stop = 1;
  for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
  unlink(path);
}

static volatile sig_atomic_t forks, bad;

static void on_alarm(int s) {
  (void)s;
  pid_t p = fork();
  if (p == 0) _exit(0);
  if (p > 0) {
    int st;
    if (waitpid(p, &st, 0) != p || !WIFEXITED(st)) bad = 1;
    forks++;
  }
}

static void test_fork_from_signal_handler(void **state) {
  (void)state;
  // The process is single-threaded here (a fresh child of the test).
  pid_t p = fork();
  assert_true(p >= 0);
  if (p == 0) {
    alarm(0);
    struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
    sigaction(SIGALRM, &sa, NULL);
    // 1 ms: a fork and wait take about 0.2 ms here; a shorter period can
    // starve the main loop (a new signal always pending), hang or not.
    struct itimerval it = {{0, 1000}, {0, 1000}};
    setitimer(ITIMER_REAL, &it, NULL);
    void *keep[64] = {0};
    for (long i = 0; forks < 100; i++) {
      int k = i & 63;
      free(keep[k]);
      keep[k] = malloc(16 + (size_t)(i % 4000));
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    _exit(bad ? 2 : 0);
  }
  int st;
  // A watchdog: kill the child if it hangs.
  for (int waited = 0; waited < 600; waited++) {
    if (waitpid(p, &st, WNOHANG) == p) break;
    usleep(100000);
    if (waited == 599) {
      kill(p, SIGKILL);
      waitpid(p, &st, 0);
      fail_msg("fork from a signal handler: the child hung");
    }
  }
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fork_with_stdio_threads),
      cmocka_unit_test(test_fork_from_signal_handler),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
