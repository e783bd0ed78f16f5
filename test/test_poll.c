/* The loop's kernel wait: it blocks until the deadline, precisely, with
 * epoll_pwait2 or with the timerfd fallback. */
#include <errno.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>

#include "helpers.h"
#include "internal.h"

static double wait_for(struct coro__poller *p, double seconds)
{
    int64_t t0 = coro__clock_ns();
    coro__poller_wait(p, t0 + (int64_t)(seconds * 1e9));
    return (double)(coro__clock_ns() - t0) / 1e9;
}

static void check_waits(void)
{
    struct coro__poller p;
    ck_assert_int_eq(coro__poller_init(&p), 0);
    for (int i = 0; i < 5; i++) {
        double took = wait_for(&p, 0.003);
        ck_assert_double_ge(took, 0.003);
        ck_assert_double_lt(took, 0.003 + 0.25 * test_slow());
    }
    /* A deadline already past returns at once. */
    ck_assert_double_lt(wait_for(&p, -1), 0.05 * test_slow());
    coro__poller_term(&p);
}

START_TEST(poller_waits_until_the_deadline)
{
    check_waits();
}
END_TEST

START_TEST(poller_timerfd_fallback_waits_until_the_deadline)
{
    atomic_store(&coro__have_pwait2, 0);
    check_waits();
    atomic_store(&coro__have_pwait2, 1);
}
END_TEST

START_TEST(poller_keeps_errno)
{
    struct coro__poller p;
    ck_assert_int_eq(coro__poller_init(&p), 0);
    errno = EXDEV;
    wait_for(&p, 0.001);
    ck_assert_int_eq(errno, EXDEV);
    coro__poller_term(&p);
}
END_TEST

START_TEST(ms_timeout_rounds_up_and_clamps)
{
    int64_t now = coro__clock_ns();
    ck_assert_int_eq(coro__ms_timeout(CORO__NEVER), -1);
    ck_assert_int_eq(coro__ms_timeout(0), 0);     /* long past */
    ck_assert_int_eq(coro__ms_timeout(now - 5000000), 0);
    /* 1.5 ms: wait 2, rounded up from what is left when it is asked (on a
     * slow machine, less by then), never down. */
    int ms = coro__ms_timeout(now + 1500000);
    int64_t left_after = now + 1500000 - coro__clock_ns();
    int floor_ms = left_after > 0 ? (int)((left_after + 999999) / 1000000) : 0;
    ck_assert_msg(ms >= floor_ms && ms <= 2, "%d ms, at least %d", ms,
                  floor_ms);
    ck_assert_int_eq(coro__ms_timeout(now + (int64_t)3e16), INT_MAX);
}
END_TEST

#if defined(__x86_64__)
/* Makes epoll_pwait2 fail with pwait2_errno and, if tfd_errno is not 0,
 * timerfd_create with tfd_errno: what restrictive container profiles do.
 * For the rest of this (forked) test process only. */
static void deny(int pwait2_errno, int tfd_errno)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                 offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 441 /* epoll_pwait2 */, 0, 1),
        BPF_STMT(BPF_RET | BPF_K,
                 SECCOMP_RET_ERRNO | (uint32_t)pwait2_errno),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_timerfd_create, 0, 1),
        BPF_STMT(BPF_RET | BPF_K,
                 tfd_errno ? SECCOMP_RET_ERRNO | (uint32_t)tfd_errno
                           : SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { sizeof filter / sizeof *filter, filter };
    ck_assert_int_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    ck_assert_int_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
}

static void *job(void *arg)
{
    struct timespec ts = { 0, 2000000 };
    nanosleep(&ts, NULL);
    return arg;
}

static void *fallback_main(void *arg)
{
    double *ratio = arg;
    double t0 = coro_now(), cpu0 = cpu_seconds();
    for (int i = 0; i < 20; i++) {
        ck_assert_int_eq(await_sleep(0.005), 0);
        void *r = NULL;
        ck_assert_int_eq(await_blocking(job, (void *)7, &r), 0);
        ck_assert_ptr_eq(r, (void *)7);
    }
    *ratio = (cpu_seconds() - cpu0) / (coro_now() - t0);
    return NULL;
}

/* epoll_pwait2 refused with EPERM (not only ENOSYS): the timerfd takes
 * over, and an idle loop still sleeps instead of spinning. */
START_TEST(pwait2_refused_falls_back_without_spinning)
{
    double cpu_share = 1;
    setenv("CORO_IO", "epoll", 1); /* the fallbacks are epoll's */
    deny(EPERM, 0);
    run_expect(fallback_main, &cpu_share, 0);
    ck_assert_int_eq(atomic_load(&coro__have_pwait2), 0);
    ck_assert_msg(cpu_share < 0.5, "CPU %.0f%% of wall", cpu_share * 100);
}
END_TEST

/* No epoll_pwait2 and no timerfd: millisecond waits, which still neither
 * spin nor miss a completed blocking call. */
START_TEST(no_pwait2_no_timerfd_still_wakes)
{
    double cpu_share = 1;
    setenv("CORO_IO", "epoll", 1);
    deny(ENOSYS, EMFILE);
    run_expect(fallback_main, &cpu_share, 0);
    ck_assert_msg(cpu_share < 0.5, "CPU %.0f%% of wall", cpu_share * 100);
}
END_TEST
#endif

Suite *poll_suite(void)
{
    Suite *s = suite_create("poll");
    TCase *tc = test_case("wait", 10);
    tcase_add_test(tc, poller_waits_until_the_deadline);
    tcase_add_test(tc, poller_timerfd_fallback_waits_until_the_deadline);
    tcase_add_test(tc, poller_keeps_errno);
    tcase_add_test(tc, ms_timeout_rounds_up_and_clamps);
    suite_add_tcase(s, tc);
#if defined(__x86_64__)
    /* A seccomp filter stays for the process: Check's children only. */
    if (test_forking()) {
        tc = test_case("fallbacks", 20);
        tcase_add_test(tc, pwait2_refused_falls_back_without_spinning);
        tcase_add_test(tc, no_pwait2_no_timerfd_still_wakes);
        suite_add_tcase(s, tc);
    }
#endif
    return s;
}
