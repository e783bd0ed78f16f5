/* env.c: what coro reads of its surroundings: its numeric environment
 * variables (CORO_STACK_SIZE, CORO_WORKERS), read by one parser so that
 * each accepts the same forms and refuses the same mistakes, and the CPUs
 * it may run on (the default pool and the default number of loops).
 */
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

unsigned coro__cpus(void)
{
    cpu_set_t set;
    long n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
    if (n <= 0)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

int coro__env_size(const char *name, size_t min, size_t max, size_t *out)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return ENOENT;
    size_t v = 0;
    const char *digits = s;
    for (; *s >= '0' && *s <= '9'; s++) {
        size_t d = (size_t)(*s - '0');
        if (v > (SIZE_MAX - d) / 10)
            return EINVAL;
        v = v * 10 + d;
    }
    if (s == digits)
        return EINVAL;
    unsigned shift = 0;
    switch (*s) {
    case 'k': case 'K': shift = 10; s++; break;
    case 'm': case 'M': shift = 20; s++; break;
    case 'g': case 'G': shift = 30; s++; break;
    default: break;
    }
    if (*s || v > (SIZE_MAX >> shift))
        return EINVAL;
    v <<= shift;
    if (v < min || v > max)
        return EINVAL;
    *out = v;
    return 0;
}

/* CORO_IO: epoll (or unset or empty), io_uring or auto. Anything else is
 * told once on stderr and is EINVAL: coro_run refuses to start rather than
 * run on a backend nobody asked for. */
int coro__env_io(void)
{
    static const char *const names[] = { "epoll", "io_uring", "auto" };
    const char *s = getenv("CORO_IO");
    if (!s || !*s)
        return CORO__IO_EPOLL;
    for (int i = 0; i < 3; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    static atomic_int told;
    if (!atomic_exchange(&told, 1))
        fprintf(stderr, "coro: CORO_IO=%s: want epoll, io_uring or auto\n",
                s);
    return EINVAL;
}
