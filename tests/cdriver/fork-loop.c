/*
 * fork-loop: the cost of process creation and exit, which the cgroup2 mount option
 * favordynmods makes dearer (fork and exit take cgroup_threadgroup_rwsem for reading; with
 * the option that percpu rwsem stays on its slow path for good).
 *
 *   fork-loop exit N     N times: fork, the child _exit(0)s, waitpid
 *   fork-loop exec N     N times: fork, the child execs /bin/true, waitpid
 *
 * Prints the mean µs per iteration (CLOCK_MONOTONIC over the whole loop, after 10 untimed
 * iterations of warm-up).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int one(int do_exec) {
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        if (do_exec)
            execl("/bin/true", "true", (char *)NULL);
        _exit(do_exec ? 127 : 0);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "child %d did not exit 0\n", (int)pid);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[1], "exit") != 0 && strcmp(argv[1], "exec") != 0)) {
        fprintf(stderr, "usage: %s exit|exec N\n", argv[0]);
        return 2;
    }
    int do_exec = strcmp(argv[1], "exec") == 0;
    long n = strtol(argv[2], NULL, 10);
    if (n <= 0) {
        fprintf(stderr, "N must be > 0\n");
        return 2;
    }
    for (int i = 0; i < 10; i++)
        if (one(do_exec) != 0)
            return 1;
    double t0 = now_us();
    for (long i = 0; i < n; i++)
        if (one(do_exec) != 0)
            return 1;
    printf("%.2f\n", (now_us() - t0) / n);
    return 0;
}
