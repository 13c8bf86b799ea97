/* Shared helpers for the benchmark C programs (compiled by benchmarks/common.py). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* async-signal-safe: format v as decimal followed by '\n' into buf, return length */
static inline int fmt_ll(char *buf, long long v) {
    char tmp[32];
    int n = 0, len = 0;
    if (v < 0) { buf[len++] = '-'; v = -v; }
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) buf[len++] = tmp[--n];
    buf[len++] = '\n';
    return len;
}

static inline int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0) { if (errno == EINTR) continue; return -1; }
        c += w; n -= (size_t)w;
    }
    return 0;
}
