/* The housekeeping thread (chores.c): slabs of stacks prepared beside a
 * loop that spawns in bulk, and unmapped there when they come back. Seen
 * from outside: the tasks run, every stack is unmapped by the time
 * coro_run returns (the fixture checks it), a program of a few tasks has
 * no extra thread, and fork leaves the child able to go on. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"

static int threads_now(void)
{
    DIR *d = opendir("/proc/self/task");
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void *nap(void *arg)
{
    await_sleep(0.001);
    return arg;
}

/* Spawns n tasks, gathers them, and says how many ran to their end. */
static long spawn_and_gather(long n)
{
    coro_task **t = malloc((size_t)n * sizeof *t);
    void **results = calloc((size_t)n, sizeof *results);
    if (!t || !results)
        abort();
    for (long i = 0; i < n; i++)
        if ((t[i] = coro_spawn(nap, &t[i])) == NULL)
            abort();
    long ran = 0;
    if (await_gather(t, (size_t)n, results, NULL) == 0)
        for (long i = 0; i < n; i++)
            ran += results[i] == &t[i];
    free(results);
    free(t);
    return ran;
}

static int threads_seen;

static void *bulk_main(void *arg)
{
    long n = *(long *)arg;
    ck_assert_int_eq(spawn_and_gather(n), n);
    threads_seen = threads_now();
    return NULL;
}

/* Several slabs' worth (a slab holds 240 default stacks): some are made
 * by the housekeeping thread, and all are unmapped before coro_run
 * returns. Three runs in a row use the one thread. */
START_TEST(bulk_spawns_use_prepared_slabs_and_give_them_back)
{
    long n = 3000;
    int before = threads_now(), first = 0;
    for (int run = 0; run < 3; run++) {
        run_expect(bulk_main, &n, 0);
        ck_assert_int_eq(atomic_load(&coro__alloc_stats.stacks), 0);
        if (run == 0)
            first = threads_seen;
        ck_assert_int_eq(threads_seen, first);
    }
    /* One thread at most, and only where a second CPU can run it (in a
     * runner that forks, the test's process had none before). TSan starts
     * a thread of its own beside the first one a program makes. */
#ifdef CORO__TSAN
    before++;
#endif
    ck_assert_int_le(first, before + 1);
    if (test_forking())
        ck_assert_int_eq(first, before + (coro__cpus() > 1 &&
                                          !coro__under_valgrind()));
}
END_TEST

/* A program of a few tasks never fills a slab: no thread for it. */
START_TEST(a_few_tasks_start_no_thread)
{
    if (!test_forking())
        return; /* an earlier test's thread may be there */
    long n = 100;
    int before = threads_now();
    run_expect(bulk_main, &n, 0);
    ck_assert_int_eq(threads_seen, before);
}
END_TEST

struct other_loop {
    atomic_int spawned; /* the other loop has spawned its tasks */
    int err;
};

static void *other_loop_main(void *arg)
{
    struct other_loop *o = arg;
    coro_task **t = malloc(3000 * sizeof *t);
    if (!t)
        abort();
    for (int i = 0; i < 3000; i++)
        t[i] = coro_spawn(nap, NULL);
    atomic_store(&o->spawned, 1);
    int err = await_gather(t, 3000, NULL, NULL);
    free(t);
    return err ? coro_fail(err) : NULL;
}

static void *other_loop_thread(void *arg)
{
    struct other_loop *o = arg;
    o->err = coro_run(other_loop_main, o, NULL);
    return NULL;
}

/* fork while another thread's loop spawns in bulk, so that the
 * housekeeping thread likely has work in hand: the child, which has no
 * such thread, may run a loop of its own that spawns in bulk too (coro.h's
 * fork rule), and must end cleanly with every stack unmapped. */
START_TEST(fork_while_another_loop_spawns_in_bulk)
{
    /* static: a failed check here leaves the other loop running on it */
    static struct other_loop o;
    o.err = -1;
    atomic_store(&o.spawned, 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, other_loop_thread, &o), 0);
    /* Bounded: that loop may have failed before it spawned. */
    double give_up = coro_now() + 10 * test_slow();
    while (!atomic_load(&o.spawned) && coro_now() < give_up)
        usleep(100);
    ck_assert(atomic_load(&o.spawned));
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* The other loop's stacks are in the child's copy too. */
        long n = 3000, stacks = atomic_load(&coro__alloc_stats.stacks);
        int err = coro_run(bulk_main, &n, NULL);
        _exit(err == 0 && atomic_load(&coro__alloc_stats.stacks) == stacks
                  ? 0
                  : 1);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_int_eq(test_join(th, NULL, 30), 0);
    ck_assert_int_eq(o.err, 0);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

Suite *chores_suite(void)
{
    Suite *s = suite_create("chores");
    TCase *tc = test_case("chores", 60);
    tcase_add_test(tc, bulk_spawns_use_prepared_slabs_and_give_them_back);
    tcase_add_test(tc, a_few_tasks_start_no_thread);
    tcase_add_test(tc, fork_while_another_loop_spawns_in_bulk);
    suite_add_tcase(s, tc);
    return s;
}
