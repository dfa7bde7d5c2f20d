/* stream_threads: one-way AF_UNIX stream transfer between two pinned threads
 * of one process, as sockbench's thread mode does it, to tell a kernel
 * effect from a sockbench one.
 *
 * usage: stream_threads socketpair|uds-stream SIZE SECONDS READER_CPU WRITER_CPU
 *
 * The writer sends SIZE-byte messages with send(); the reader receives them
 * with recv(MSG_WAITALL); both buffers are page-aligned. uds-stream binds a
 * path in a fresh 0700 directory (removed at once), connects and accepts;
 * socketpair uses socketpair(2). Prints: gbit_per_s writer_cpu_us_per_msg
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static size_t size;
static int rfd, reader_cpu;
static char *rxb;

static void die(const char *what) { perror(what); exit(1); }

static void pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    if (pthread_setaffinity_np(pthread_self(), sizeof s, &s)) die("pthread_setaffinity_np");
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *reader(void *arg) {
    (void)arg;
    pin(reader_cpu);
    for (;;) {
        size_t off = 0;
        while (off < size) {
            ssize_t r = recv(rfd, rxb + off, size - off, MSG_WAITALL);
            if (r <= 0) return 0;
            off += (size_t)r;
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s socketpair|uds-stream SIZE SECONDS READER_CPU WRITER_CPU\n", argv[0]);
        return 2;
    }
    size = strtoul(argv[2], 0, 10);
    double secs = atof(argv[3]);
    reader_cpu = atoi(argv[4]);
    int writer_cpu = atoi(argv[5]);
    if (size == 0 || secs <= 0) { fprintf(stderr, "bad size or seconds\n"); return 2; }
    size_t cap = (size + 4095) / 4096 * 4096;
    char *txb = aligned_alloc(4096, cap);
    rxb = aligned_alloc(4096, cap);
    if (!txb || !rxb) die("aligned_alloc");
    memset(txb, 1, size);
    memset(rxb, 0, size);
    int fds[2];
    if (strcmp(argv[1], "socketpair") == 0) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds)) die("socketpair");
    } else if (strcmp(argv[1], "uds-stream") == 0) {
        char dir[] = "/tmp/stream_threads.XXXXXX";
        if (!mkdtemp(dir)) die("mkdtemp");
        struct sockaddr_un u = {.sun_family = AF_UNIX};
        snprintf(u.sun_path, sizeof u.sun_path, "%s/s", dir);
        int l = socket(AF_UNIX, SOCK_STREAM, 0);
        if (l < 0 || bind(l, (void *)&u, sizeof u) || listen(l, 1)) die("listen");
        fds[0] = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fds[0] < 0 || connect(fds[0], (void *)&u, sizeof u)) die("connect");
        fds[1] = accept(l, 0, 0);
        if (fds[1] < 0) die("accept");
        close(l);
        unlink(u.sun_path);
        rmdir(dir);
    } else {
        fprintf(stderr, "transport: socketpair or uds-stream\n");
        return 2;
    }
    int wfd = fds[0];
    rfd = fds[1];
    pthread_t th;
    if (pthread_create(&th, 0, reader, 0)) die("pthread_create");
    pin(writer_cpu);
    struct rusage u0, u1;
    getrusage(RUSAGE_THREAD, &u0);
    double t0 = now(), el;
    long n = 0;
    do {
        for (int k = 0; k < 16; k++, n++) {
            size_t off = 0;
            while (off < size) {
                ssize_t w = send(wfd, txb + off, size - off, MSG_NOSIGNAL);
                if (w <= 0) die("send");
                off += (size_t)w;
            }
        }
        el = now() - t0;
    } while (el < secs);
    getrusage(RUSAGE_THREAD, &u1);
    shutdown(wfd, SHUT_WR);
    pthread_join(th, 0);
    double cpu = (u1.ru_utime.tv_sec - u0.ru_utime.tv_sec + u1.ru_stime.tv_sec - u0.ru_stime.tv_sec) +
                 (u1.ru_utime.tv_usec - u0.ru_utime.tv_usec + u1.ru_stime.tv_usec - u0.ru_stime.tv_usec) * 1e-6;
    printf("%.3f %.3f\n", (double)n * size * 8 / el / 1e9, cpu / n * 1e6);
    return 0;
}
