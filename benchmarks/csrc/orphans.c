/* orphans COUNT TIMEOUT_S MODE — run as PID 1's child in a fresh PID namespace with its own
   /proc (unshare --pid --fork --mount-proc INIT -- orphans ...).  Makes COUNT orphans:
   short-lived middle processes (reaped here) each fork 100 grandchildren and exit at once,
   so the grandchildren are re-parented to PID 1, which must reap them.
     burst:  the grandchildren block reading a pipe; once all COUNT exist, this process closes
             the pipe's write end and they all exit together — PID 1 gets COUNT zombies at once.
             Timed from that moment until none is left.
     stream: the grandchildren _exit(0) at once, while the forking goes on; timed from the
             first fork until none is left.
   "Unreaped" = numeric entries in /proc other than PID 1 and this process.  Also the peak
   count of zombies (state Z, from periodic scans), and PID 1's CPU time (sum of
   /proc/1/task/x/schedstat) over the timed interval.  Prints one JSON line. */
#include "common.h"
#include <dirent.h>
#include <sys/wait.h>

static int count_unreaped(int *zombies_out) {
    DIR *d = opendir("/proc");
    if (!d) return -1;
    int n = 0, z = 0;
    pid_t self = getpid();
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        int pid = atoi(e->d_name);
        if (pid == 1 || pid == self) continue;
        n++;
        if (zombies_out) {
            char path[64], buf[256];
            snprintf(path, sizeof path, "/proc/%d/stat", pid);
            int fd = open(path, O_RDONLY);
            if (fd >= 0) {
                ssize_t r = read(fd, buf, sizeof buf - 1);
                close(fd);
                if (r > 0) {
                    buf[r] = 0;
                    char *p = strrchr(buf, ')');
                    if (p && p[1] == ' ' && p[2] == 'Z') z++;
                }
            }
        }
    }
    closedir(d);
    if (zombies_out) *zombies_out = z;
    return n;
}

static long long init_cpu_ns(void) {
    DIR *d = opendir("/proc/1/task");
    if (!d) return -1;
    long long sum = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/1/task/%s/schedstat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        long long v = 0;
        if (fscanf(f, "%lld", &v) == 1) sum += v;
        fclose(f);
    }
    closedir(d);
    return sum;
}

int main(int argc, char **argv) {
    int count = argc > 1 ? atoi(argv[1]) : 10000;
    double timeout_s = argc > 2 ? atof(argv[2]) : 60;
    int burst = !(argc > 3 && strcmp(argv[3], "stream") == 0);
    const int batch = 100;
    if (getppid() != 1)
        fprintf(stderr, "orphans: warning: parent is %d, not PID 1\n", (int)getppid());
    int gate[2];
    if (pipe(gate) < 0) { perror("pipe"); return 1; }
    int before = count_unreaped(NULL);
    long long cpu0 = init_cpu_ns(), t0 = now_ns(), t_first = t0;
    long long deadline = t0 + (long long)(timeout_s * 1e9);
    int made = 0, peak = 0, peak_z = 0, fork_fail = 0, batches = 0;
    while (made < count && now_ns() < deadline) {
        int b = count - made < batch ? count - made : batch;
        pid_t m = fork();
        if (m < 0) { fork_fail++; usleep(1000); continue; }
        if (m == 0) {
            int done = 0, fails = 0;
            while (done < b && fails < 1000) {
                pid_t g = fork();
                if (g == 0) {
                    if (burst) {
                        char c;
                        close(gate[1]);
                        while (read(gate[0], &c, 1) < 0 && errno == EINTR) {}
                    }
                    _exit(0);
                }
                if (g < 0) { fails++; usleep(1000); continue; }
                done++;
            }
            _exit(done == b ? 0 : 1);
        }
        int st;
        while (waitpid(m, &st, 0) < 0 && errno == EINTR) {}
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) made += b; else fork_fail++;
        if (!burst && ++batches % 5 == 0) {
            int u = count_unreaped(NULL) - before;
            if (u > peak) peak = u;
        }
    }
    close(gate[0]);
    long long t_forked = now_ns();
    int alive_before_release = 0;
    if (burst) {
        alive_before_release = count_unreaped(NULL) - before;
        cpu0 = init_cpu_ns();
        t0 = now_ns();
        close(gate[1]);  /* release: every grandchild reads EOF and exits */
    }
    int left = 0, polls = 0;
    long long next_scan = 0;
    for (;;) {
        long long t = now_ns();
        int z = 0;
        if (t >= next_scan) {  /* a zombie scan reads every /proc/PID/stat: not every poll */
            left = count_unreaped(&z) - before;
            if (z > peak_z) peak_z = z;
            next_scan = now_ns() + 5000000;
        } else {
            left = count_unreaped(NULL) - before;
        }
        polls++;
        if (left > peak) peak = left;
        if (left <= 0 || now_ns() > deadline) break;
        usleep(200);
    }
    long long t_done = now_ns(), cpu1 = init_cpu_ns();
    usleep(50000);
    int zombies = 0;
    int unreaped_final = count_unreaped(&zombies) - before;
    printf("{\"mode\": \"%s\", \"made\": %d, \"fork_failures\": %d, \"before\": %d, "
           "\"alive_before_release\": %d, \"reap_all_s\": %.6f, "
           "\"fork_phase_s\": %.6f, \"peak_unreaped\": %d, \"peak_zombies\": %d, "
           "\"left_at_end\": %d, \"zombies_after_50ms\": %d, \"unreaped_after_50ms\": %d, "
           "\"init_cpu_s\": %.6f, \"polls\": %d, \"timed_out\": %s}\n",
           burst ? "burst" : "stream", made, fork_fail, before, alive_before_release,
           (t_done - t0) / 1e9, (t_forked - t_first) / 1e9, peak, peak_z, left > 0 ? left : 0,
           zombies, unreaped_final, (cpu1 - cpu0) / 1e9, polls, left > 0 ? "true" : "false");
    fflush(stdout);
    return 0;
}
