/* Tests for uring.c: the backend CORO_IO chooses, the fallback to epoll
 * where the kernel refuses io_uring, and operations in flight in the ring
 * that a timeout, a cancellation or coro_close gives up: the call returns
 * only once the kernel is done with the buffer. */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "helpers.h"
#include "internal.h"

/* Sets CORO_IO for one test, restored by io_restore. */
static char saved_io[32];
static int had_io;

static void io_set(const char *v)
{
    const char *old = getenv("CORO_IO");
    had_io = old != NULL;
    if (old)
        snprintf(saved_io, sizeof saved_io, "%s", old);
    setenv("CORO_IO", v, 1);
}

static void io_restore(void)
{
    if (had_io)
        setenv("CORO_IO", saved_io, 1);
    else
        unsetenv("CORO_IO");
}

/* valgrind cannot follow the ring: the ring's own tests run without it. */
static int ring_testable(void)
{
    return !coro__under_valgrind();
}

static void *backend_main(void *arg)
{
    const char **out = arg;
    *out = coro_io_backend();
    return NULL;
}

static const char *backend_for(const char *value)
{
    const char *got = NULL;
    io_set(value);
    run_expect(backend_main, &got, 0);
    io_restore();
    return got;
}

START_TEST(backend_follows_coro_io)
{
    ck_assert_ptr_null(coro_io_backend()); /* outside a loop */
    ck_assert_str_eq(backend_for("epoll"), "epoll");
    ck_assert_str_eq(backend_for(""), "epoll"); /* the default */
    if (ring_testable()) {
        ck_assert_str_eq(backend_for("io_uring"), "io_uring");
        ck_assert_str_eq(backend_for("auto"), "io_uring");
    } else {
        ck_assert_str_eq(backend_for("auto"), "epoll");
    }
}
END_TEST

START_TEST(bad_coro_io_is_einval_with_a_message)
{
    io_set("kqueue");
    stderr_capture();
    int err = coro_run(backend_main, &(const char *){ NULL }, NULL);
    char *text = stderr_captured();
    io_restore();
    ck_assert_int_eq(err, EINVAL);
    /* Told once a process: Check's children each tell it. */
    if (test_forking())
        ck_assert_msg(strstr(text, "CORO_IO=kqueue") != NULL, "%s", text);
    free(text);
}
END_TEST

/* A reader and a writer on a socket pair: the socket helpers end to end,
 * whichever backend the loop has. */
struct pair {
    int  sv[2];
    char buf[64];
    size_t got;
};

static void *pair_reader(void *arg)
{
    struct pair *p = arg;
    int err = await_read(p->sv[0], p->buf, sizeof p->buf, 5, &p->got);
    return err ? coro_fail(err) : NULL;
}

static void *round_trip_main(void *arg)
{
    const char **backend = arg;
    struct pair p;
    memset(&p, 0, sizeof p);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
                                p.sv), 0);
    coro_task *r = coro_spawn(pair_reader, &p);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(await_sleep(0.01), 0); /* the reader waits */
    ck_assert_int_eq(await_write_all(p.sv[1], "ping", 4, 5), 0);
    ck_assert_int_eq(await_task(r, NULL), 0);
    ck_assert_uint_eq(p.got, 4);
    ck_assert_int_eq(memcmp(p.buf, "ping", 4), 0);
    ck_assert_int_eq(await_sleep(0.002), 0); /* timers still work */
    *backend = coro_io_backend();
    close(p.sv[0]);
    close(p.sv[1]);
    return NULL;
}

START_TEST(round_trip_on_both_backends)
{
    static const char *const values[] = { "epoll", "io_uring" };
    for (int i = 0; i < 2; i++) {
        if (i == 1 && !ring_testable())
            break;
        const char *backend = NULL;
        io_set(values[i]);
        run_expect(round_trip_main, &backend, 0);
        io_restore();
        ck_assert_str_eq(backend, values[i]);
    }
}
END_TEST

#if defined(__x86_64__)
/* Makes io_uring_setup fail with err, as the io_uring_disabled sysctl,
 * a container's seccomp profile or an old kernel does. For the rest of
 * this (forked) test process only. */
static void deny_uring(int err)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                 offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 425 /* io_uring_setup */, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (uint32_t)err),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { sizeof filter / sizeof *filter, filter };
    ck_assert_int_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    ck_assert_int_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
}

/* auto falls back to epoll, and everything works there; io_uring asked
 * for by name is the kernel's errno, said on stderr. */
START_TEST(refused_ring_falls_back_under_auto)
{
    int err = _i == 0 ? EPERM : ENOSYS;
    deny_uring(err);
    const char *backend = NULL;
    io_set("auto");
    run_expect(round_trip_main, &backend, 0);
    ck_assert_str_eq(backend, "epoll");
    io_set("io_uring");
    stderr_capture();
    int got = coro_run(round_trip_main, &backend, NULL);
    char *text = stderr_captured();
    io_restore();
    ck_assert_int_eq(got, err);
    ck_assert_msg(strstr(text, "CORO_IO=io_uring") != NULL, "%s", text);
    free(text);
}
END_TEST
#endif

/* ----------------------------------------------------------------------
 * Operations given up while in flight
 * ---------------------------------------------------------------------- */

enum { POISON = 0xA5, BUF = 256 };

struct flight {
    int   sv[2];
    char *buf;           /* on the heap: the caller's, poisoned after */
    int   err;
    size_t got;
    double timeout;
};

static void *flight_reader(void *arg)
{
    struct flight *f = arg;
    f->err = await_read(f->sv[0], f->buf, BUF, f->timeout, &f->got);
    return NULL;
}

static int all_poison(const char *b)
{
    for (int i = 0; i < BUF; i++)
        if ((unsigned char)b[i] != POISON)
            return 0;
    return 1;
}

enum { BY_TIMEOUT, BY_CANCEL, BY_CLOSE };

/* The reader's RECV is in the ring when it is given up (by how); after
 * its call returned, the buffer is poisoned and data sent: the buffer
 * must stay poisoned, and the data must still be there to read. */
static void *flight_main(void *arg)
{
    int how = *(int *)arg;
    struct flight f;
    memset(&f, 0, sizeof f);
    ck_assert_str_eq(coro_io_backend(), "io_uring");
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
                                f.sv), 0);
    f.buf = malloc(BUF);
    ck_assert_ptr_nonnull(f.buf);
    f.timeout = how == BY_TIMEOUT ? 0.02 * test_slow() : -1;
    coro_task *r = coro_spawn(flight_reader, &f);
    ck_assert_ptr_nonnull(r);
    /* Long enough for the loop to have submitted the RECV. */
    ck_assert_int_eq(await_sleep(0.005 * test_slow()), 0);
    if (how == BY_CANCEL)
        ck_assert_int_eq(coro_cancel(r), 0);
    if (how == BY_CLOSE)
        ck_assert_int_eq(coro_close(f.sv[0]), 0);
    ck_assert_int_eq(await_task(r, NULL), how == BY_CANCEL ? ECANCELED : 0);
    int want = how == BY_TIMEOUT ? ETIMEDOUT
               : how == BY_CANCEL ? ECANCELED : EBADF;
    ck_assert_int_eq(f.err, want);
    ck_assert_uint_eq(f.got, 0);
    memset(f.buf, POISON, BUF);
    if (how == BY_CLOSE) {
        /* The RECV in flight holds no reference that keeps the socket
         * open: the peer sees the end. */
        size_t got = 1;
        char c;
        ck_assert_int_eq(await_read(f.sv[1], &c, 1, 5, &got), 0);
        ck_assert_uint_eq(got, 0);
    } else {
        ck_assert_int_eq(await_write_all(f.sv[1], "late", 4, 5), 0);
        ck_assert_int_eq(await_sleep(0.005 * test_slow()), 0);
        char other[8];
        size_t got = 0;
        ck_assert_int_eq(await_read(f.sv[0], other, sizeof other, 5, &got),
                         0);
        ck_assert_uint_eq(got, 4);
        ck_assert_int_eq(memcmp(other, "late", 4), 0);
        close(f.sv[0]);
    }
    ck_assert_msg(all_poison(f.buf), "the kernel wrote the buffer after "
                                     "await_read returned");
    free(f.buf);
    close(f.sv[1]);
    return NULL;
}

START_TEST(given_up_read_in_flight_leaves_the_buffer)
{
    if (!ring_testable())
        return;
    int how = _i;
    io_set("io_uring");
    run_expect(flight_main, &how, 0);
    io_restore();
}
END_TEST

/* A shared-stack task reads into a buffer on its stack while another
 * shared-stack task scribbles over the shared stack: the kernel must
 * never have been handed that buffer. */
struct shared_read {
    int    sv[2];
    char   seen[8];
    int    err;
    int    stop;
    unsigned scribbles;
};

static void *stack_reader(void *arg)
{
    struct shared_read *s = arg;
    char buf[64];
    memset(buf, 0, sizeof buf);
    size_t got = 0;
    s->err = await_read(s->sv[0], buf, sizeof buf, 5, &got);
    memcpy(s->seen, buf, got < sizeof s->seen ? got : sizeof s->seen);
    return NULL;
}

static void *scribbler(void *arg)
{
    struct shared_read *s = arg;
    while (!s->stop) {
        volatile char junk[512];
        for (size_t i = 0; i < sizeof junk; i++)
            junk[i] = (char)0x5A;
        s->scribbles++;
        ck_assert_int_eq(await_yield(), 0);
    }
    return NULL;
}

static void *shared_main(void *arg)
{
    (void)arg;
    struct shared_read s;
    memset(&s, 0, sizeof s);
    ck_assert_str_eq(coro_io_backend(), "io_uring");
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
                                s.sv), 0);
    coro_attr shared = { .flags = CORO_SHARED_STACK };
    coro_task *r = coro_spawn_attr(&shared, stack_reader, &s);
    coro_task *w = coro_spawn_attr(&shared, scribbler, &s);
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_nonnull(w);
    while (s.scribbles < 20)
        ck_assert_int_eq(await_yield(), 0);
    ck_assert_int_eq(await_write_all(s.sv[1], "hello", 5, 5), 0);
    ck_assert_int_eq(await_task(r, NULL), 0);
    s.stop = 1;
    ck_assert_int_eq(await_task(w, NULL), 0);
    ck_assert_int_eq(s.err, 0);
    ck_assert_int_eq(memcmp(s.seen, "hello", 5), 0);
    close(s.sv[0]);
    close(s.sv[1]);
    return NULL;
}

START_TEST(shared_stack_buffer_is_never_the_kernels)
{
    if (!ring_testable())
        return;
    io_set("io_uring");
    run_expect(shared_main, NULL, 0);
    io_restore();
}
END_TEST

/* A read of any cap from a shared-stack task, the data coming once the
 * read waits: whether the buffer is on the shared stack was asked with
 * buf + cap, which overflows for a cap past the address space (UB that
 * UBSan's pointer-overflow check reports). */
static int cap_pair[2];
static char cap_buf[16];

static void *later_hello(void *arg)
{
    (void)arg;
    ck_assert_int_eq(await_sleep(0.01), 0);
    ck_assert_int_eq(await_write_all(cap_pair[1], "hello", 5, 5), 0);
    return NULL;
}

static void *any_cap_reader(void *arg)
{
    size_t cap = *(const size_t *)arg, got = 0;
    coro_task *w = coro_spawn(later_hello, NULL);
    ck_assert_int_eq(await_read(cap_pair[0], cap_buf, cap, 5, &got), 0);
    ck_assert_uint_eq(got, 5);
    ck_assert_int_eq(memcmp(cap_buf, "hello", 5), 0);
    ck_assert_int_eq(await_task(w, NULL), 0);
    return NULL;
}

static void *any_cap_main(void *arg)
{
    (void)arg;
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
                                cap_pair),
                     0);
    static const size_t caps[] = { 16, SIZE_MAX / 2, SIZE_MAX - 1, SIZE_MAX };
    coro_attr shared = { .flags = CORO_SHARED_STACK };
    for (size_t i = 0; i < sizeof caps / sizeof *caps; i++) {
        coro_task *r = coro_spawn_attr(&shared, any_cap_reader,
                                       (void *)&caps[i]);
        ck_assert_int_eq(await_task(r, NULL), 0);
    }
    close(cap_pair[0]);
    close(cap_pair[1]);
    return NULL;
}

START_TEST(shared_stack_read_of_any_cap_on_the_ring)
{
    if (!ring_testable())
        return;
    io_set("io_uring");
    run_expect(any_cap_main, NULL, 0);
    io_restore();
}
END_TEST

/* Bad input on the ring's paths is what it is on epoll's. */
static void *bad_input_main(void *arg)
{
    (void)arg;
    char b[4];
    size_t got;
    int fd;
    ck_assert_int_eq(await_read(-1, b, sizeof b, 0.1, &got), EBADF);
    ck_assert_int_eq(await_read(0x7fffffff, b, sizeof b, 0.1, &got), EBADF);
    ck_assert_int_eq(await_readable(0x7fffffff, 0.1), EBADF);
    ck_assert_int_eq(await_accept(0x7fffffff, 0.1, &fd), EBADF);
    ck_assert_int_eq(await_write_all(-1, "x", 1, 0.1), EBADF);
    ck_assert_int_eq(coro_fd_keep(0x7fffffff), EBADF);
    ck_assert_int_eq(await_read(0, NULL, 4, 0.1, &got), EINVAL);
    return NULL;
}

START_TEST(bad_input_on_the_ring)
{
    if (!ring_testable())
        return;
    io_set("io_uring");
    run_expect(bad_input_main, NULL, 0);
    io_restore();
}
END_TEST

Suite *uring_suite(void)
{
    Suite *s = suite_create("uring");
    TCase *tc = test_case("backend", 20);
    tcase_add_test(tc, backend_follows_coro_io);
    tcase_add_test(tc, bad_coro_io_is_einval_with_a_message);
    tcase_add_test(tc, round_trip_on_both_backends);
    tcase_add_test(tc, bad_input_on_the_ring);
    suite_add_tcase(s, tc);
    tc = test_case("in_flight", 20);
    tcase_add_loop_test(tc, given_up_read_in_flight_leaves_the_buffer, 0, 3);
    tcase_add_test(tc, shared_stack_buffer_is_never_the_kernels);
    tcase_add_test(tc, shared_stack_read_of_any_cap_on_the_ring);
    suite_add_tcase(s, tc);
#if defined(__x86_64__)
    /* A seccomp filter stays for the process: Check's children only. */
    if (test_forking()) {
        tc = test_case("fallbacks", 20);
        tcase_add_loop_test(tc, refused_ring_falls_back_under_auto, 0, 2);
        suite_add_tcase(s, tc);
    }
#endif
    return s;
}
