/* Scenario C: user look-ups.
 *
 * First two lessons of the tutorial: a coroutine with no suspension point
 * runs start to finish (two digit printers never mix), and two one-second
 * good_night() calls gathered take one second. Then find_users(n), which
 * looks up n users a second each: one after another for 3, 2 and 1 users
 * takes six seconds; awaited together (asyncio.wait, or asyncio.gather)
 * three, and gather's lines interleave round by round in argument order.
 */
#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "coro.h"

static const char *const variants[] = { "sync", "wait", "gather", NULL };

static const struct demo_info info = {
    .name = "c_user_lookups",
    .about = "Scenario C: two coroutines without a suspension point print\n"
             "5555555555 then 7777777777, never mixed; two good_night()\n"
             "gathered take 1 s. Then find_users(3), (2), (1), a second per\n"
             "user: sync one after another (6 s); wait and gather all three\n"
             "together (3 s), gather's lines interleaving round by round.",
    .variants = variants,
};

static struct demo_opts opts;

/* async def print_digit(d): for _ in range(10): print(d, end='') */
static void *print_digit(void *arg)
{
    int d = (int)(intptr_t)arg;
    for (int i = 0; i < 10; i++)
        printf("%d", d); /* no await: nothing else can run in between */
    printf("\n");
    return NULL;
}

/* async def good_night(): await asyncio.sleep(1); print('Good night!') */
static void *good_night(void *arg)
{
    (void)arg;
    int err = await_sleep(1.0 * opts.scale);
    if (err)
        return coro_fail(err);
    printf("Good night!\n");
    return NULL;
}

static void *lessons_main(void *arg)
{
    (void)arg;
    coro_task *t[2] = { coro_spawn(print_digit, (void *)(intptr_t)5),
                        coro_spawn(print_digit, (void *)(intptr_t)7) };
    int err = await_gather(t, 2, NULL, NULL);
    double t0 = coro_now();
    t[0] = coro_spawn(good_night, NULL);
    t[1] = coro_spawn(good_night, NULL);
    if (!err)
        err = await_gather(t, 2, NULL, NULL);
    printf("two good_night() gathered: %.2f s\n", coro_now() - t0);
    return err ? coro_fail(err) : NULL;
}

/* def find_users_sync(n): for i in 1..n: print(...); time.sleep(1) */
static void find_users_sync(int n)
{
    timeline_row("find_users(%d)", n);
    for (int i = 1; i <= n; i++) {
        printf("looking up user %d of %d ...\n", i, n);
        demo_block_sleep(1.0 * opts.scale);
    }
    printf("> all %d users looked up\n", n);
}

/* async def find_users(n): for i in 1..n: print(...);
 *                          await asyncio.sleep(1) */
static void *find_users(void *arg)
{
    int n = (int)(intptr_t)arg;
    for (int i = 1; i <= n; i++) {
        printf("looking up user %d of %d ...\n", i, n);
        int err = await_sleep(1.0 * opts.scale);
        if (err)
            return coro_fail(err);
    }
    printf("> all %d users looked up\n", n);
    return NULL;
}

/* await asyncio.wait([...]) or await asyncio.gather(...) */
static void *lookups_main(void *arg)
{
    int use_gather = (int)(intptr_t)arg;
    coro_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = coro_spawn(find_users, (void *)(intptr_t)(3 - i));
    int err = 0;
    if (!use_gather) {
        size_t ndone;
        err = await_wait(t, 3, CORO_ALL_COMPLETED, -1, &ndone);
    }
    int gathered = await_gather(t, 3, NULL, NULL); /* collects them */
    return err || gathered ? coro_fail(err ? err : gathered) : NULL;
}

static int run_variant(const char *name, const char *what, int use_gather)
{
    demo_heading(name, what);
    double t0 = demo_now();
    if (coro_run(lookups_main, (void *)(intptr_t)use_gather, NULL) != 0)
        return 1;
    demo_summary(name, demo_now() - t0, 3.0 * opts.scale);
    return 0;
}

int main(int argc, char **argv)
{
    demo_parse(argc, argv, &info, &opts);

    if (coro_run(lessons_main, NULL, NULL) != 0)
        return 1;
    if (demo_want(&opts, "sync")) {
        demo_heading("sync", "find_users(3), (2), (1) in turn");
        double t0 = demo_now();
        for (int n = 3; n >= 1; n--)
            find_users_sync(n);
        demo_summary("sync", demo_now() - t0, 6.0 * opts.scale);
    }
    if (demo_want(&opts, "wait") &&
        run_variant("wait", "the three awaited with await_wait", 0))
        return 1;
    if (demo_want(&opts, "gather") &&
        run_variant("gather", "the three gathered", 1))
        return 1;
    return 0;
}
