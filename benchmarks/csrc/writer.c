/* writer BYTES RESULT_FILE: writes BYTES to stdout in 1 MiB write()s, then writes
   "bytes ns" (time from the first write to the end of the last) to RESULT_FILE. */
#include "common.h"
int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: writer BYTES RESULT_FILE\n"); return 2; }
    long long total = atoll(argv[1]);
    static char buf[1 << 20];
    memset(buf, 'x', sizeof buf);
    for (size_t i = 127; i < sizeof buf; i += 128) buf[i] = '\n';
    long long left = total, t0 = now_ns();
    while (left > 0) {
        size_t n = left < (long long)sizeof buf ? (size_t)left : sizeof buf;
        if (write_all(1, buf, n) < 0) { perror("writer: write"); return 1; }
        left -= (long long)n;
    }
    long long t1 = now_ns();
    FILE *f = fopen(argv[2], "w");
    if (!f) { perror("writer: result file"); return 1; }
    fprintf(f, "%lld %lld\n", total, t1 - t0);
    fclose(f);
    return 0;
}
