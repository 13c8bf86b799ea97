/* sigwin TIMEOUT_MS CMD [ARG...]
   Forks; the child puts itself in its own process group, notes CLOCK_MONOTONIC and execs CMD.
   The parent polls /proc/<pid>/status in a tight loop and notes the first moment SIGTERM
   shows in SigBlk (blocked), and the first moment it shows in SigBlk|SigCgt (blocked or
   caught: either way a SIGTERM can no longer kill the init by its default action).
   An init that waits for signals with sigwait/sigtimedwait (tini, dumb-init) has them blocked,
   but while it sleeps in rt_sigtimedwait the kernel shows the waited-for signals as unblocked
   (they are dequeued by the call, never acted on): a sleeping task whose /proc/PID/syscall is
   rt_sigtimedwait with SIGTERM in the set it waits for (read from /proc/PID/mem) counts as
   blocked too.
   Prints "t_exec t_blocked t_safe polls" (0 = never seen before the timeout), then sends
   SIGTERM to the group 20 ms later, and SIGKILL after 2 s more. */
#include "common.h"
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
/* 1 if pid sleeps in rt_sigtimedwait waiting for a set that holds `bit` */
static int waits_for(pid_t pid, unsigned long long bit) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/syscall", (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    char *end;
    long nr = strtol(buf, &end, 10);
    if (end == buf || nr != SYS_rt_sigtimedwait) return 0;
    unsigned long long set_addr = strtoull(end, NULL, 16);
    snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
    fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    unsigned long long set = 0;
    n = pread(fd, &set, sizeof set, (off_t)set_addr);
    close(fd);
    return n == (ssize_t)sizeof set && (set & bit);
}
static unsigned long long field(const char *buf, const char *name) {
    const char *p = strstr(buf, name);
    if (!p) return 0;
    return strtoull(p + strlen(name), NULL, 16);
}
int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: sigwin TIMEOUT_MS CMD...\n"); return 2; }
    long long timeout = atoll(argv[1]) * 1000000LL;
    volatile long long *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) { perror("mmap"); return 1; }
    shared[0] = 0;
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 1; }
    if (pid == 0) {
        setpgid(0, 0);
        shared[0] = now_ns();
        execvp(argv[2], argv + 2);
        _exit(127);
    }
    setpgid(pid, pid);
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    int fd = open(path, O_RDONLY);
    const unsigned long long term = 1ULL << (SIGTERM - 1);
    long long t_blk = 0, t_safe = 0, start = now_ns(), polls = 0;
    while (fd >= 0) {
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        long long t = now_ns();
        polls++;
        if (n <= 0) break;
        buf[n] = 0;
        if (shared[0]) {
            unsigned long long blk = field(buf, "SigBlk:\t"), cgt = field(buf, "SigCgt:\t");
            const char *st = strstr(buf, "State:\t");
            if (!(blk & term) && st && st[7] == 'S' && waits_for(pid, term)) blk |= term;
            if (!t_blk && (blk & term)) t_blk = t;
            if (!t_safe && ((blk | cgt) & term)) t_safe = t;
            if (t_blk && t_safe) break;
        }
        if (t - start > timeout) break;
    }
    printf("%lld %lld %lld %lld\n", shared[0], t_blk, t_safe, polls);
    fflush(stdout);
    /* give the init time to start its child first: a stop signal that arrives before the
       child exists may be lost by some inits (dumb-init forwards to a group not made yet) */
    usleep(20000);
    kill(-pid, SIGTERM);
    kill(pid, SIGTERM);
    int st;
    for (int i = 0; i < 200; i++) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return 0;
        usleep(10000);
    }
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return 0;
}
