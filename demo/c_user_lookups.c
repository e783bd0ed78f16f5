/* Scenario C: user look-ups.
 *
 * The tutorial is a notebook; its first cells come first here, as lessons:
 * plain functions run one after the other (do_sync(5) then do_sync(7) print
 * 55555555557777777777); a coroutine with no suspension point runs start to
 * finish like a plain function, even beside another task (the digits
 * never mix), and so does one that prints a hundred threes then a hundred
 * fives; hello, a one-second wait, world; and two one-second good_night()
 * gathered take one second between the start and end clock lines. Then
 * find_users(n), which looks up n users a second each: one after another
 * for 3, 2 and 1 users takes six seconds; awaited together (asyncio.wait,
 * or asyncio.gather) three, and gather's lines interleave round by round in
 * argument order. Each prints its total time as the tutorial does.
 */
#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "coro.h"

static const char *const variants[] = { "sync", "wait", "gather", NULL };

static const struct demo_info info = {
    .name = "c_user_lookups",
    .about = "Scenario C: do_sync(5) and do_sync(7), plain functions, print\n"
             "55555555557777777777; coroutines without a suspension point\n"
             "run to their end, and two gathered never mix their digits;\n"
             "one prints 100 threes then 100 fives; two good_night()\n"
             "gathered take 1 s. Then find_users(3), (2), (1), a second per\n"
             "user: sync one after another (6 s); wait and gather all three\n"
             "together (3 s), gather's lines interleaving round by round.",
    .original = "In C that is good_night's line (잘자요), find_users' lines "
                "and the total-time lines. The tutorial shows no synchronous "
                "find_users: the sync variant's lines follow the "
                "asynchronous ones, with 동기 (synchronous) for 비동기.",
    .variants = variants,
};

static struct demo_opts opts;

/* def do_sync(n): for i in range(10): print(n, end='') */
static void do_sync(int n)
{
    for (int i = 0; i < 10; i++)
        printf("%d", n);
}

/* async def do_asyncs(n): for i in range(10): print(n, end='')
 * No await inside: once it runs, nothing else runs until it returns. */
static void *do_asyncs(void *arg)
{
    do_sync((int)(intptr_t)arg);
    return NULL;
}

/* async def main_async(): await do_asyncs(5)
 * Awaiting a coroutine (not a task) runs it inside the caller's task: in
 * coro, a plain call. */
static void main_async(void)
{
    do_asyncs((void *)(intptr_t)5);
}

/* async def main(n):
 *     for i in range(100): print(3)
 *     for i in range(100): print(5) */
static void threes_then_fives(void)
{
    for (int i = 0; i < 100; i++)
        printf("3\n");
    for (int i = 0; i < 100; i++)
        printf("5\n");
}

/* async def main(): print('hello'); await asyncio.sleep(1); print('world') */
static int hello_world(void)
{
    printf("hello\n");
    int err = await_sleep(1.0 * opts.scale);
    printf("world\n");
    return err;
}

/* async def good_night(): await asyncio.sleep(1); print('잘자요') */
static void *good_night(void *arg)
{
    (void)arg;
    int err = await_sleep(1.0 * opts.scale);
    if (err)
        return coro_fail(err);
    printf(SAY("Good night!\n", "잘자요\n"));
    return NULL;
}

/* print(f"start : {time.strftime('%X')}"); await main(); print(...end...)
 * where main gathers two good_night(). */
static int good_nights(void)
{
    char now[9];
    printf("start : %s\n", demo_clock(now));
    double t0 = coro_now();
    coro_task *t[2] = { coro_spawn(good_night, NULL),
                        coro_spawn(good_night, NULL) };
    int err = await_gather(t, 2, NULL, NULL);
    double took = coro_now() - t0;
    printf("end : %s\n", demo_clock(now));
    printf("(two good_night() gathered: %.3f s)\n", took);
    return err;
}

/* The notebook's first cells that await, in its order; each cell's output
 * ends its line. */
static void *lessons_main(void *arg)
{
    (void)arg;
    do_asyncs((void *)(intptr_t)5); /* await do_asyncs(5) */
    printf("\n");
    main_async(); /* await main_async() */
    printf("\n");
    /* Not in the tutorial: two such coroutines as tasks side by side still
     * print 5555555555 then 7777777777, never mixed. */
    coro_task *t[2] = { coro_spawn(do_asyncs, (void *)(intptr_t)5),
                        coro_spawn(do_asyncs, (void *)(intptr_t)7) };
    int err = await_gather(t, 2, NULL, NULL);
    printf("\n");
    threes_then_fives(); /* await main(5) */
    if (!err)
        err = hello_world(); /* await main() */
    if (!err)
        err = good_nights();
    return err ? coro_fail(err) : NULL;
}

/* print(f'{n}명 중 {i}번 째 사용자 조회 중 ...'): the English puts i first,
 * hence the numbered conversions. */
static void print_looking_up(int i, int n)
{
    printf(SAY("looking up user %2$d of %1$d ...\n",
               "%1$d명 중 %2$d번 째 사용자 조회 중 ...\n"),
           n, i);
}

/* def find_users_sync(n):
 *     for i in range(1, n + 1): print(...); time.sleep(1)
 *     print(f'> 총 {n} 명 사용자 동기 조회 완료!') */
static void find_users_sync(int n)
{
    timeline_row("find_users(%d)", n);
    for (int i = 1; i <= n; i++) {
        print_looking_up(i, n);
        demo_block_sleep(1.0 * opts.scale);
    }
    printf(SAY("> all %d users looked up\n",
               "> 총 %d 명 사용자 동기 조회 완료!\n"),
           n);
}

/* async def find_users_async(n):
 *     for i in range(1, n + 1): print(...); await asyncio.sleep(1)
 *     print(f'> 총 {n} 명 사용자 비동기 조회 완료!') */
static void *find_users(void *arg)
{
    int n = (int)(intptr_t)arg;
    for (int i = 1; i <= n; i++) {
        print_looking_up(i, n);
        int err = await_sleep(1.0 * opts.scale);
        if (err)
            return coro_fail(err);
    }
    printf(SAY("> all %d users looked up\n",
               "> 총 %d 명 사용자 비동기 조회 완료!\n"),
           n);
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

/* async def process_async():
 *     start = time.time(); await ...; end = time.time()
 *     print(f'>>> 비동기 처리 총 소요 시간: {end - start}') */
static int run_variant(const char *name, const char *what, int use_gather)
{
    demo_heading(name, what);
    double start = demo_now();
    if (coro_run(lookups_main, (void *)(intptr_t)use_gather, NULL) != 0)
        return 1;
    double took = demo_now() - start;
    char t[32];
    printf(SAY(">>> total time, asynchronous: %s\n",
               ">>> 비동기 처리 총 소요 시간: %s\n"),
           demo_repr(took, t));
    demo_summary(name, took, 3.0 * opts.scale);
    return 0;
}

int main(int argc, char **argv)
{
    demo_parse(argc, argv, &info, &opts);

    do_sync(5); /* plain calls, outside any loop */
    do_sync(7);
    printf("\n");
    if (coro_run(lessons_main, NULL, NULL) != 0)
        return 1;
    if (demo_want(&opts, "sync")) {
        /* def process_sync(): find_users_sync(3), (2), (1), timed */
        demo_heading("sync", "find_users(3), (2), (1) in turn");
        double start = demo_now();
        for (int n = 3; n >= 1; n--)
            find_users_sync(n);
        double took = demo_now() - start;
        char t[32];
        printf(SAY(">>> total time, synchronous: %s\n",
                   ">>> 동기 처리 총 소요 시간: %s\n"),
               demo_repr(took, t));
        demo_summary("sync", took, 6.0 * opts.scale);
    }
    if (demo_want(&opts, "wait") &&
        run_variant("wait", "the three awaited with await_wait", 0))
        return 1;
    if (demo_want(&opts, "gather") &&
        run_variant("gather", "the three gathered", 1))
        return 1;
    return 0;
}
