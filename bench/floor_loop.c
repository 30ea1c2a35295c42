/*
 * The floor of a compiled recorder's tick, for bench/recorder_phases.py --floor.
 *
 * Bench-only: not part of flamekit. It answers one question the Python floor cannot:
 * what the tick's unavoidable system calls and the wake-up cost when no interpreter
 * runs around them. Same schedule as the Python loops (absolute monotonic deadlines,
 * one a period), same calls (one process_vm_readv of the ranges the walker reads, one
 * pread of the thread's /proc stat), plus a compare of the bytes with the last tick's,
 * the least any walker does with them.
 *
 * usage: floor_loop PID STAT_PATH RATE_HZ TICKS SLEEP(0|1) HEXADDR:LEN...
 * prints the process CPU time per tick in microseconds.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static double cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: %s PID STAT_PATH RATE_HZ TICKS SLEEP HEXADDR:LEN...\n", argv[0]);
        return 2;
    }
    pid_t pid = (pid_t)atoi(argv[1]);
    int stat_fd = open(argv[2], O_RDONLY);
    double rate = atof(argv[3]);
    long ticks = atol(argv[4]);
    int sleep_first = atoi(argv[5]);
    int n = argc - 6;
    if (stat_fd < 0 || rate <= 0 || ticks <= 0) {
        perror("floor_loop");
        return 2;
    }
    struct iovec *remote = calloc((size_t)n, sizeof *remote);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        unsigned long addr, len;
        if (sscanf(argv[6 + i], "%lx:%lu", &addr, &len) != 2) {
            fprintf(stderr, "floor_loop: bad range %s\n", argv[6 + i]);
            return 2;
        }
        remote[i].iov_base = (void *)addr;
        remote[i].iov_len = len;
        total += len;
    }
    char *now = malloc(total), *last = calloc(total, 1), stat_buf[512];
    struct iovec local = {now, total};
    long period_ns = (long)(1e9 / rate);
    struct timespec due;
    clock_gettime(CLOCK_MONOTONIC, &due);
    long unchanged = 0;
    double start = cpu_us();
    for (long t = 0; t < ticks; t++) {
        due.tv_nsec += period_ns;
        while (due.tv_nsec >= 1000000000L) {
            due.tv_nsec -= 1000000000L;
            due.tv_sec++;
        }
        if (sleep_first)
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL);
        if (process_vm_readv(pid, &local, 1, remote, (unsigned long)n, 0) < 0) {
            perror("floor_loop: process_vm_readv");
            return 1;
        }
        if (pread(stat_fd, stat_buf, sizeof stat_buf, 0) < 0) {
            perror("floor_loop: pread");
            return 1;
        }
        unchanged += memcmp(now, last, total) == 0;
        memcpy(last, now, total);
    }
    printf("%.1f\n", (cpu_us() - start) / (double)ticks);
    return unchanged < 0; /* keeps the compare from being optimised away */
}
