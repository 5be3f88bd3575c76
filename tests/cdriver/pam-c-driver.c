/*
 * pam-c-driver: PAM transactions from a C program, as sshd, su, login and cron run them:
 * no Rust runtime and no libgcc_s in the process unless a module brings it. For each of N
 * transactions: pam_start_confdir, pam_open_session, HOLD_MS in the session (default 0),
 * pam_close_session, pam_end, then GAP_MS of idle time (an isolated login; 0: back to back).
 * One line per transaction:
 *
 *   start_us open_us close_us end_us open_rc close_rc libgcc_s_mapped_during_open
 *
 * Usage: pam-c-driver CONFDIR SERVICE USER N GAP_MS [HOLD_MS]
 */
#define _GNU_SOURCE
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
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

int main(int argc, char **argv) {
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: %s CONFDIR SERVICE USER N GAP_MS [HOLD_MS]\n", argv[0]);
        return 2;
    }
    const char *confdir = argv[1], *service = argv[2], *user = argv[3];
    long n = strtol(argv[4], NULL, 10), gap_ms = strtol(argv[5], NULL, 10);
    struct pam_conv c = {conv, NULL};
    long hold_ms = argc == 7 ? strtol(argv[6], NULL, 10) : 0;
    struct timespec gap = {gap_ms / 1000, (gap_ms % 1000) * 1000000L};
    struct timespec hold = {hold_ms / 1000, (hold_ms % 1000) * 1000000L};
    for (long i = 0; i < n; i++) {
        pam_handle_t *h = NULL;
        double t0 = now_us();
        int rc = pam_start_confdir(service, user, &c, confdir, &h);
        double t1 = now_us();
        if (rc != PAM_SUCCESS) {
            fprintf(stderr, "pam_start_confdir: %d\n", rc);
            return 1;
        }
        int open_rc = pam_open_session(h, 0);
        double t2 = now_us();
        int mapped = libgcc_s_mapped();
        if (hold_ms > 0)
            nanosleep(&hold, NULL);
        double t3 = now_us();
        int close_rc = pam_close_session(h, 0);
        double t4 = now_us();
        pam_end(h, open_rc);
        double t5 = now_us();
        printf("%.1f %.1f %.1f %.1f %d %d %d\n", t1 - t0, t2 - t1, t4 - t3, t5 - t4, open_rc,
               close_rc, mapped);
        fflush(stdout);
        if (gap_ms > 0)
            nanosleep(&gap, NULL);
    }
    return 0;
}
