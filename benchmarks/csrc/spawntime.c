/* spawntime CMD [ARG...]
   t0 = CLOCK_MONOTONIC just before posix_spawn; CMD's stdout is a pipe read to EOF;
   then waitpid; prints "t0 tend status" and, on the next line, the first line CMD wrote. */
#include "common.h"
#include <spawn.h>
#include <sys/wait.h>
extern char **environ;
int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: spawntime CMD...\n"); return 2; }
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) { perror("pipe"); return 1; }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    pid_t pid;
    long long t0 = now_ns();
    int rc = posix_spawnp(&pid, argv[1], &fa, NULL, argv + 1, environ);
    if (rc) { errno = rc; perror("posix_spawnp"); return 1; }
    close(p[1]);
    char out[4096];
    size_t used = 0;
    for (;;) {
        ssize_t r = read(p[0], out + used, sizeof(out) - 1 - used);
        if (r < 0) { if (errno == EINTR) continue; break; }
        if (r == 0) break;
        used += (size_t)r;
        if (used >= sizeof(out) - 1) used = 0; /* keep reading; output not needed */
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    long long t1 = now_ns();
    out[used] = 0;
    char *nl = strchr(out, '\n');
    if (nl) *nl = 0;
    int status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    printf("%lld %lld %d\n%s\n", t0, t1, status, out);
    return 0;
}
