/* lat_ref: an independent ping-pong reference in C, in the style of
 * lmbench's lat_unix/lat_tcp, for cross-checking sockbench where sockperf
 * cannot (Debian's sockperf 3.7 has no AF_UNIX support).
 *
 * usage: lat_ref tcp4|uds-stream SIZE ITERATIONS SERVER_CPU CLIENT_CPU
 * Forks an echo server pinned to SERVER_CPU; the client, pinned to
 * CLIENT_CPU, warms up, then times every round trip with
 * clock_gettime(CLOCK_MONOTONIC). Blocking sockets, TCP_NODELAY, loopback
 * only; the socket file lives in a fresh 0700 directory and is removed.
 * Prints: median_ns mean_ns min_ns iterations
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) { perror(what); exit(1); }

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set)) die("sched_setaffinity");
}

static void xfer(int fd, char *buf, size_t n, int is_read) {
    size_t off = 0;
    while (off < n) {
        ssize_t r = is_read ? read(fd, buf + off, n - off) : write(fd, buf + off, n - off);
        if (r <= 0) die(is_read ? "read" : "write");
        off += (size_t)r;
    }
}

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s tcp4|uds-stream SIZE ITERATIONS SERVER_CPU CLIENT_CPU\n", argv[0]);
        return 2;
    }
    int tcp = strcmp(argv[1], "tcp4") == 0;
    if (!tcp && strcmp(argv[1], "uds-stream") != 0) { fprintf(stderr, "transport: tcp4 or uds-stream\n"); return 2; }
    size_t size = strtoul(argv[2], 0, 10);
    long iters = strtol(argv[3], 0, 10);
    int scpu = atoi(argv[4]), ccpu = atoi(argv[5]);
    char *buf = calloc(1, size);
    long long *rtt = calloc((size_t)iters, sizeof *rtt);
    if (!buf || !rtt || size == 0 || iters <= 0) { fprintf(stderr, "bad size or iterations\n"); return 2; }

    int lfd, one = 1;
    struct sockaddr_in in = {0};
    struct sockaddr_un un = {0};
    char dir[] = "/tmp/lat_ref.XXXXXX";
    socklen_t alen;
    struct sockaddr *addr;
    if (tcp) {
        lfd = socket(AF_INET, SOCK_STREAM, 0);
        in.sin_family = AF_INET;
        in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr = (struct sockaddr *)&in;
        alen = sizeof in;
    } else {
        if (!mkdtemp(dir)) die("mkdtemp");
        lfd = socket(AF_UNIX, SOCK_STREAM, 0);
        un.sun_family = AF_UNIX;
        snprintf(un.sun_path, sizeof un.sun_path, "%s/s", dir);
        addr = (struct sockaddr *)&un;
        alen = sizeof un;
    }
    if (lfd < 0) die("socket");
    if (bind(lfd, addr, alen)) die("bind");
    if (listen(lfd, 1)) die("listen");
    if (tcp && getsockname(lfd, addr, &alen)) die("getsockname");

    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) { /* echo server */
        pin(scpu);
        int fd = accept(lfd, 0, 0);
        if (fd < 0) die("accept");
        if (tcp) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        for (;;) {
            size_t off = 0;
            while (off < size) {
                ssize_t r = read(fd, buf + off, size - off);
                if (r <= 0) _exit(0);
                off += (size_t)r;
            }
            xfer(fd, buf, size, 0);
        }
    }
    pin(ccpu);
    int fd = socket(tcp ? AF_INET : AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, addr, alen)) die("connect");
    if (tcp) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    else { unlink(un.sun_path); rmdir(dir); }
    close(lfd);

    for (long i = 0; i < 10000; i++) { xfer(fd, buf, size, 0); xfer(fd, buf, size, 1); }
    struct timespec a, b;
    for (long i = 0; i < iters; i++) {
        clock_gettime(CLOCK_MONOTONIC, &a);
        xfer(fd, buf, size, 0);
        xfer(fd, buf, size, 1);
        clock_gettime(CLOCK_MONOTONIC, &b);
        rtt[i] = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
    }
    close(fd);
    waitpid(pid, 0, 0);
    double sum = 0;
    for (long i = 0; i < iters; i++) sum += (double)rtt[i];
    qsort(rtt, (size_t)iters, sizeof *rtt, cmp);
    printf("%lld %.0f %lld %ld\n", rtt[iters / 2], sum / (double)iters, rtt[0], iters);
    return 0;
}
