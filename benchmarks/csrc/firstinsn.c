/* Prints CLOCK_MONOTONIC (ns) as the first thing main() does, then exits 0.
   Statically linked, so main() runs right after the kernel finishes exec. */
#include "common.h"
int main(void) {
    long long t = now_ns();
    char buf[32];
    int n = fmt_ll(buf, t);
    write_all(1, buf, (size_t)n);
    return 0;
}
