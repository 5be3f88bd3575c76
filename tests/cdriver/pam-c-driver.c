/*
 * pam-c-driver: PAM transactions from a C program, as sshd, su, login and cron run them:
 * no Rust runtime and no libgcc_s in the process unless a module brings it. For each of N
 * transactions: pam_start_confdir, pam_open_session, HOLD_MS in the session (default 0),
 * pam_close_session, pam_end, then GAP_MS of idle time (an isolated login; 0: back to back).
 * One line per transaction:
 *
 *   start_us open_us close_us end_us open_rc close_rc libgcc_s_mapped_during_open open_done_us
 *   open_cpu_us
 *
 * (open_done_us: CLOCK_MONOTONIC in µs when the open returned; open_cpu_us: the CPU time the
 * open took, user and kernel, CLOCK_THREAD_CPUTIME_ID: the open's time without its waits, of
 * which an isolated login's migration has one, an RCU grace period. What a burst of logins
 * queues on, on a busy host, is this.)
 *
 *   pam-c-driver CONFDIR SERVICE USER N GAP_MS [HOLD_MS]
 *   pam-c-driver --floor PARENT USER N GAP_MS [HOLD_MS]
 *   pam-c-driver --floor-b PARENT USER N GAP_MS [HOLD_MS]
 *   pam-c-driver --floor-spare PARENT USER N GAP_MS [HOLD_MS]
 *
 * --floor times what any module placing a login in a cgroup must do, without libpam: open =
 * getpwnam of USER, mkdir PARENT/USER-PID-I, the pid into its cgroup.procs (one migration);
 * close = nothing (the process stays in its leaf until it exits). The previous leaf is removed
 * after the next open moved the process out, untimed (what the daemon does). start and end
 * are 0.
 *
 * --floor-b times the system calls the module's tree needs for one login, without libpam and
 * without the module's own work (config, checks, NSS beyond getpwnam): getpwnam, mkdir of the
 * session's directory, its two caps (cgroup.max.descendants 64, cgroup.max.depth 4), mkdir of
 * its login/, the pid into login/cgroup.procs, the session mark (an xattr), the delegation
 * (fchownat of the delegated files, fchown of the directory). It is what tests/bench/run calls
 * floor B, and it takes cgroup_mutex five times where --floor takes it twice.
 *
 * --floor-spare (floor S) is floor B with the session's directory made ahead of the login, as a
 * daemon could keep one spare leaf per user ready between logins: the mkdir, the two caps and
 * the mkdir of login/ are done before the open is timed (before the start instant of a burst,
 * in the quiet between isolated logins); the open is getpwnam, the claim of the spare (the
 * session mark, an xattr), the pid into login/cgroup.procs and the delegation. It takes
 * cgroup_mutex once, for the migration. No such pool exists in the module: the row measures
 * what one would leave of a burst's cost.
 *
 * With PAM_C_DRIVER_START_AT=µs (CLOCK_MONOTONIC), the first transaction waits until then:
 * a burst of drivers started together. Its pam_start comes before the wait and its open after
 * it, as sshd starts a connection's PAM transaction at authentication, long before the session
 * opens: the burst is of sessions opening at the same instant (pam_start's own cost is the
 * start+end figure). The open is timed from the end of the wait.
 *
 * With PAM_C_DRIVER_FORK=1, each transaction runs in a child process of its own that exits after
 * it (after pam_end; --floor: after the open), as sshd runs each connection's PAM in a process
 * of its own: no transaction meets a process an earlier session left in its leaf. The parent
 * waits for the child, then (--floor) removes its leaf, untimed, and keeps GAP_MS of quiet. The
 * parent resolves USER once first, as sshd has before a session opens.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    if (ms > 0)
        nanosleep(&t, NULL);
}

/* Is libgcc_s.so.1 mapped in this process right now? */
static int libgcc_s_mapped(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096];
    int found = 0;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "/libgcc_s.so")) {
            found = 1;
            break;
        }
    fclose(f);
    return found;
}

/* A conversation that answers nothing (session modules only print). */
static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data) {
    (void)n;
    (void)msg;
    (void)data;
    *resp = NULL;
    return PAM_CONV_ERR;
}

/* CPU time of the calling thread, µs. */
static double cpu_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void wait_for_start(void) {
    const char *at = getenv("PAM_C_DRIVER_START_AT");
    if (!at)
        return;
    double t = strtod(at, NULL);
    struct timespec ts = {(time_t)(t / 1e6), (long)(((long long)t % 1000000) * 1000)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

/* The driver process itself (not a transaction's child): names the floor's leaves. */
static pid_t driver_pid;

/* The directory of transaction I's leaf. */
static void leaf_dir(char *dir, size_t size, const char *parent, const char *user, long i) {
    snprintf(dir, size, "%s/%s-%d-%ld", parent, user, (int)driver_pid, i);
}

static int floor_open(const char *parent, const char *user, long i) {
    char dir[4096], procs[4200], pid[32];
    struct passwd *pw = getpwnam(user);
    if (!pw)
        return 1;
    /* Named by the driver's pid (the parent's, in fork mode), so the parent can remove it. */
    leaf_dir(dir, sizeof dir, parent, user, i);
    if (mkdir(dir, 0700) != 0)
        return 2;
    snprintf(procs, sizeof procs, "%s/cgroup.procs", dir);
    int fd = open(procs, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return 3;
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    int rc = write(fd, pid, n) == n ? 0 : 4;
    close(fd);
    return rc;
}

/* Writes TEXT into the file NAME under the directory fd DIR: 0, or -1. */
static int write_at(int dir, const char *name, const char *text) {
    int fd = openat(dir, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    ssize_t len = (ssize_t)strlen(text);
    int rc = write(fd, text, len) == len ? 0 : -1;
    close(fd);
    return rc;
}

/* The files /sys/kernel/cgroup/delegate lists: what a leaf's delegation chowns. */
static const char *delegated[] = {"cgroup.procs", "cgroup.threads", "cgroup.subtree_control",
                                  "memory.oom.group", "memory.reclaim"};

/* The leaf at DIR made as the module makes one: mkdir, its two caps, mkdir of its login/.
 * Its descriptor, or -1 (errno set), the leaf's step that failed in *RC. */
static int leaf_make(const char *dir, int *rc) {
    if (mkdir(dir, 0700) != 0) {
        *rc = 2;
        return -1;
    }
    int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (d < 0)
        *rc = 3;
    else if (write_at(d, "cgroup.max.descendants", "64") || write_at(d, "cgroup.max.depth", "4"))
        *rc = 5;
    else if (mkdirat(d, "login", 0755) != 0)
        *rc = 6;
    else
        return d;
    if (d >= 0)
        close(d);
    return -1;
}

/* The login's process into the leaf D's login/ and the session mark on D, in ORDER (floor B:
 * migration first, as the module does with a leaf it makes; floor S: the mark first, its
 * claim), then the delegation to PW: 0, or the step that failed. */
static int leaf_enter(int d, const char *user, const struct passwd *pw, int mark_first) {
    char pid[32], mark[512];
    snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    snprintf(mark, sizeof mark, "user = \"%s\"\nservice = \"bench\"\npid = %d\n", user,
             (int)getpid());
    size_t mark_len = strlen(mark);
    if (mark_first && fsetxattr(d, "trusted.pam_cgroup.bench", mark, mark_len, 0) != 0)
        return 7;
    if (write_at(d, "login/cgroup.procs", pid))
        return 4;
    if (!mark_first && fsetxattr(d, "trusted.pam_cgroup.bench", mark, mark_len, 0) != 0)
        return 7;
    for (size_t k = 0; k < sizeof delegated / sizeof *delegated; k++)
        /* A file whose controller is not enabled here (memory.oom.group) is absent. */
        if (fchownat(d, delegated[k], pw->pw_uid, pw->pw_gid, AT_SYMLINK_NOFOLLOW) != 0 &&
            errno != ENOENT)
            return 8;
    return fchown(d, pw->pw_uid, pw->pw_gid) != 0 ? 8 : 0;
}

static int floor_b_open(const char *parent, const char *user, long i) {
    char dir[4096];
    struct passwd *pw = getpwnam(user);
    if (!pw)
        return 1;
    leaf_dir(dir, sizeof dir, parent, user, i);
    int rc = 0, d = leaf_make(dir, &rc);
    if (d < 0)
        return rc;
    rc = leaf_enter(d, user, pw, 0);
    close(d);
    return rc;
}

/* --floor-spare's untimed part: the leaf of transaction I with its caps and login/, made
 * ahead of the login. 0, or the step that failed. */
static int floor_spare_make(const char *parent, const char *user, long i) {
    char dir[4096];
    leaf_dir(dir, sizeof dir, parent, user, i);
    int rc = 0, d = leaf_make(dir, &rc);
    if (d < 0)
        return rc;
    close(d);
    return 0;
}

/* --floor-spare's timed part: the claim of the leaf made ahead, the migration, the delegation. */
static int floor_spare_open(const char *parent, const char *user, long i) {
    char dir[4096];
    struct passwd *pw = getpwnam(user);
    if (!pw)
        return 1;
    leaf_dir(dir, sizeof dir, parent, user, i);
    int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (d < 0)
        return 3;
    /* The claim: the session's mark on the spare (the module removes the spare's mark). */
    int rc = leaf_enter(d, user, pw, 1);
    close(d);
    return rc;
}

/* The leaf of transaction I (--floor-b's login/ first). */
static void floor_remove(const char *parent, const char *user, long i) {
    char dir[4096], login[4200];
    leaf_dir(dir, sizeof dir, parent, user, i);
    snprintf(login, sizeof login, "%s/login", dir);
    rmdir(login);
    rmdir(dir);
}

int main(int argc, char **argv) {
    int floor_b = argc > 1 && strcmp(argv[1], "--floor-b") == 0;
    int floor_spare = argc > 1 && strcmp(argv[1], "--floor-spare") == 0;
    int floor = floor_b || floor_spare || (argc > 1 && strcmp(argv[1], "--floor") == 0);
    const int fixed = 6; /* argv[0] and five arguments, in either form */
    if (argc != fixed && argc != fixed + 1) {
        fprintf(stderr,
                "usage: %s CONFDIR SERVICE USER N GAP_MS [HOLD_MS]\n"
                "       %s --floor PARENT USER N GAP_MS [HOLD_MS]\n"
                "       %s --floor-b PARENT USER N GAP_MS [HOLD_MS]\n"
                "       %s --floor-spare PARENT USER N GAP_MS [HOLD_MS]\n",
                argv[0], argv[0], argv[0], argv[0]);
        return 2;
    }
    const char *confdir = floor ? NULL : argv[1], *service = floor ? NULL : argv[2];
    const char *parent = floor ? argv[2] : NULL;
    /* USER, N and GAP_MS sit at the same places in both forms. */
    const char *user = argv[3];
    long n = strtol(argv[4], NULL, 10), gap_ms = strtol(argv[5], NULL, 10);
    long hold_ms = argc == fixed + 1 ? strtol(argv[fixed], NULL, 10) : 0;
    struct pam_conv c = {conv, NULL};
    char home[8400] = "";
    if (floor) {
        /* Where the process goes back to at the end, so the last leaf can go too. */
        FILE *f = fopen("/proc/self/cgroup", "r");
        char line[4096];
        while (f && fgets(line, sizeof line, f))
            if (strncmp(line, "0::", 3) == 0) {
                line[strcspn(line, "\n")] = 0;
                /* PARENT is a cgroup directly under the mount: the mount is its dirname. */
                char mount[4096];
                snprintf(mount, sizeof mount, "%s", parent);
                char *slash = strrchr(mount, '/');
                if (slash)
                    *slash = 0;
                snprintf(home, sizeof home, "%s%s/cgroup.procs", mount, line + 3);
            }
        if (f)
            fclose(f);
    }
    const char *fork_env = getenv("PAM_C_DRIVER_FORK");
    int per_process = fork_env && strcmp(fork_env, "1") == 0;
    driver_pid = getpid();
    /* What sshd has done before a session opens: the user resolved (NSS loaded), so each
     * child starts from that, not from a process that never looked a user up. */
    if (per_process && !getpwnam(user)) {
        fprintf(stderr, "no user %s\n", user);
        return 1;
    }
    /* In fork mode the barrier is the parent's; a PAM transaction of its own process waits
     * after its pam_start (above). */
    /* The first spare is made before the start instant: a burst meets the claims only. */
    if (floor_spare && n > 0 && floor_spare_make(parent, user, 0) != 0) {
        fprintf(stderr, "spare leaf 0: %s\n", strerror(errno));
        return 1;
    }
    if (floor || per_process)
        wait_for_start();
    for (long i = 0; i < n; i++) {
        /* The next spares in the quiet before each login, untimed (the daemon's work). */
        if (floor_spare && i > 0 && floor_spare_make(parent, user, i) != 0) {
            fprintf(stderr, "spare leaf %ld: %s\n", i, strerror(errno));
            return 1;
        }
        if (per_process) {
            fflush(stdout);
            pid_t child = fork();
            if (child < 0) {
                perror("fork");
                return 1;
            }
            if (child > 0) {
                int status = 0;
                if (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
                    fprintf(stderr, "transaction %ld: its process failed (status %d)\n", i, status);
                    return 1;
                }
                if (floor)
                    floor_remove(parent, user, i);
                sleep_ms(gap_ms);
                continue;
            }
        }
        pam_handle_t *h = NULL;
        int open_rc, close_rc = 0, mapped;
        double t0 = now_us(), t1 = t0, t2, t3, t4, t5, start_us = 0, cpu0, open_cpu;
        if (floor) {
            cpu0 = cpu_now_us();
            open_rc = floor_spare ? floor_spare_open(parent, user, i)
                      : floor_b   ? floor_b_open(parent, user, i)
                                  : floor_open(parent, user, i);
            open_cpu = cpu_now_us() - cpu0;
            t2 = now_us();
            if (i > 0 && !per_process)
                floor_remove(parent, user, i - 1);
            sleep_ms(hold_ms);
            mapped = libgcc_s_mapped();
            t3 = now_us();
            t4 = t3;
            t5 = t4;
        } else {
            int rc = pam_start_confdir(service, user, &c, confdir, &h);
            t1 = now_us();
            if (rc != PAM_SUCCESS) {
                fprintf(stderr, "pam_start_confdir: %d\n", rc);
                return 1;
            }
            start_us = t1 - t0;
            if (i == 0 && !per_process) {
                wait_for_start();
                t1 = now_us();
            }
            cpu0 = cpu_now_us();
            open_rc = pam_open_session(h, 0);
            open_cpu = cpu_now_us() - cpu0;
            t2 = now_us();
            /* After the hold: the module stays mapped until pam_end, and the read of
             * /proc/self/maps is the driver's own work, kept out of a burst's opens. */
            sleep_ms(hold_ms);
            mapped = libgcc_s_mapped();
            t3 = now_us();
            close_rc = pam_close_session(h, 0);
            t4 = now_us();
            pam_end(h, open_rc);
            t5 = now_us();
        }
        printf("%.1f %.1f %.1f %.1f %d %d %d %.0f %.1f\n", start_us, t2 - t1, t4 - t3, t5 - t4,
               open_rc, close_rc, mapped, t2, open_cpu);
        fflush(stdout);
        if (per_process)
            _exit(0);
        sleep_ms(gap_ms);
    }
    if (floor && home[0] && !per_process) {
        int fd = open(home, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            char pid[32];
            int len = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
            if (write(fd, pid, len) != len)
                fprintf(stderr, "back to %s: %s\n", home, strerror(errno));
            close(fd);
        }
        if (n > 0)
            floor_remove(parent, user, n - 1);
    }
    return 0;
}
