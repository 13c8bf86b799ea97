/* sigrecv: writes "R\n" once SIGUSR1's handler is installed; each SIGUSR1 then writes
   CLOCK_MONOTONIC (ns, taken first thing in the handler) as a decimal line to stdout.
   Exits on SIGTERM/SIGINT (default action) or after 600 s. */
#include "common.h"
static void on_usr1(int sig) {
    (void)sig;
    long long t = now_ns();
    char buf[32];
    int n = fmt_ll(buf, t);
    int saved = errno;
    write_all(1, buf, (size_t)n);
    errno = saved;
}
int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    write_all(1, "R\n", 2);
    alarm(600);
    for (;;) pause();
}
