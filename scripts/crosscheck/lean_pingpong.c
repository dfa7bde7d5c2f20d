/* lean_pingpong: the leanest ping-pong we can write in C, the yardstick for
 * sockbench's own overhead (and an independent cross-check where sockperf
 * cannot go: Debian's sockperf 3.7 has no AF_UNIX).
 *
 * usage: lean_pingpong tcp4|uds-stream SIZE SECONDS SERVER_CPU CLIENT_CPU [VARIANT...]
 *
 * Default (the lean loop): fork an echo server pinned to SERVER_CPU; the
 * client, pinned to CLIENT_CPU, runs 1,000 untimed round trips, then
 * batches of 64 round trips with blocking write/read, reading the clock
 * only at each batch's ends, until SECONDS have passed. Loopback only,
 * TCP_NODELAY; the socket file lives in a fresh 0700 directory and is
 * removed at once. Prints: mean_ns round_trips
 *
 * VARIANTs add, one at a time, what sockbench does differently, so that
 * paired runs can price each:
 *   thread   the server is a thread of this process, not a forked child
 *   sendrecv send(MSG_NOSIGNAL)/recv instead of write/read
 *   waitall  recv(MSG_WAITALL) (implies sendrecv)
 *   clock    two clock reads around every round trip (what a per-message
 *            latency costs), their difference summed
 *   timeo    SO_RCVTIMEO/SO_SNDTIMEO of 5 s on both ends
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int v_thread, v_sendrecv, v_waitall, v_clock, v_timeo;
static size_t size;
static int server_cpu;

static void die(const char *what) { perror(what); exit(1); }

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set)) die("sched_setaffinity");
}

static void put(int fd, const char *buf) {
    size_t off = 0;
    while (off < size) {
        ssize_t r = v_sendrecv ? send(fd, buf + off, size - off, MSG_NOSIGNAL) : write(fd, buf + off, size - off);
        if (r <= 0) die("write");
        off += (size_t)r;
    }
}

/* 0 at end-of-file */
static int get(int fd, char *buf) {
    size_t off = 0;
    while (off < size) {
        ssize_t r = v_sendrecv ? recv(fd, buf + off, size - off, v_waitall ? MSG_WAITALL : 0)
                               : read(fd, buf + off, size - off);
        if (r == 0) return 0;
        if (r < 0) die("read");
        off += (size_t)r;
    }
    return 1;
}

static void timeouts(int fd) {
    struct timeval tv = {5, 0};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv))
        die("setsockopt");
}

static void *serve(void *arg) {
    int fd = (int)(long)arg;
    char *buf = aligned_alloc(4096, (size + 4095) / 4096 * 4096);
    pin(server_cpu);
    while (get(fd, buf)) put(fd, buf);
    return 0;
}

static long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s tcp4|uds-stream SIZE SECONDS SERVER_CPU CLIENT_CPU [thread|sendrecv|waitall|clock|timeo]...\n", argv[0]);
        return 2;
    }
    int tcp = strcmp(argv[1], "tcp4") == 0;
    if (!tcp && strcmp(argv[1], "uds-stream") != 0) { fprintf(stderr, "transport: tcp4 or uds-stream\n"); return 2; }
    size = strtoul(argv[2], 0, 10);
    double secs = atof(argv[3]);
    server_cpu = atoi(argv[4]);
    int client_cpu = atoi(argv[5]);
    for (int i = 6; i < argc; i++) {
        if (!strcmp(argv[i], "thread")) v_thread = 1;
        else if (!strcmp(argv[i], "sendrecv")) v_sendrecv = 1;
        else if (!strcmp(argv[i], "waitall")) v_sendrecv = v_waitall = 1;
        else if (!strcmp(argv[i], "clock")) v_clock = 1;
        else if (!strcmp(argv[i], "timeo")) v_timeo = 1;
        else { fprintf(stderr, "unknown variant %s\n", argv[i]); return 2; }
    }
    if (size == 0 || secs <= 0) { fprintf(stderr, "bad size or seconds\n"); return 2; }
    char *buf = aligned_alloc(4096, (size + 4095) / 4096 * 4096);
    memset(buf, 0, size);

    int lfd, one = 1;
    struct sockaddr_in in = {0};
    struct sockaddr_un un = {0};
    char dir[] = "/tmp/lean_pingpong.XXXXXX";
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
    int fd = socket(tcp ? AF_INET : AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, addr, alen)) die("connect");
    int sfd = accept(lfd, 0, 0);
    if (sfd < 0) die("accept");
    close(lfd);
    if (!tcp) { unlink(un.sun_path); rmdir(dir); }
    if (tcp) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (v_timeo) { timeouts(fd); timeouts(sfd); }

    pid_t pid = 0;
    pthread_t th;
    if (v_thread) {
        if (pthread_create(&th, 0, serve, (void *)(long)sfd)) die("pthread_create");
    } else {
        pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) { close(fd); serve((void *)(long)sfd); _exit(0); }
        close(sfd);
    }
    pin(client_cpu);

    for (int i = 0; i < 1000; i++) { put(fd, buf); get(fd, buf); }
    long long total = 0, trips = 0, per_trip = 0, deadline = now() + (long long)(secs * 1e9);
    for (;;) {
        long long a = now();
        for (int i = 0; i < 64; i++) {
            if (v_clock) {
                long long t0 = now();
                put(fd, buf);
                get(fd, buf);
                per_trip += now() - t0;
            } else {
                put(fd, buf);
                get(fd, buf);
            }
        }
        long long b = now();
        total += b - a;
        trips += 64;
        if (b >= deadline) break;
    }
    shutdown(fd, SHUT_WR);
    if (v_thread) pthread_join(th, 0); else waitpid(pid, 0, 0);
    if (per_trip < 0) return 1; /* keeps the per-trip reads from being optimised away */
    printf("%.1f %lld\n", (double)total / (double)trips, trips);
    return 0;
}
