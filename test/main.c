/* The test runner: every suite in one SRunner. Select with CK_RUN_SUITE and
 * CK_RUN_CASE; CK_FORK=no runs everything in one process (valgrind). */
#include <stdlib.h>

#include "helpers.h"

int main(void)
{
    SRunner *sr = srunner_create(coro_suite());
    srunner_add_suite(sr, sched_suite());
    srunner_add_suite(sr, timer_suite());
    srunner_add_suite(sr, poll_suite());
    srunner_add_suite(sr, executor_suite());
    srunner_add_suite(sr, io_suite());
    srunner_add_suite(sr, net_suite());
    srunner_add_suite(sr, http_suite());
    srunner_add_suite(sr, sync_suite());
    srunner_add_suite(sr, debug_suite());
    srunner_add_suite(sr, trace_suite());
    srunner_add_suite(sr, overflow_suite());
    srunner_add_suite(sr, join_suite());
    srunner_add_suite(sr, group_suite());
    srunner_add_suite(sr, scope_suite());
    srunner_add_suite(sr, waits_suite());
    srunner_add_suite(sr, inspect_suite());
    srunner_add_suite(sr, local_suite());
    srunner_add_suite(sr, loops_suite());
    srunner_add_suite(sr, watchdog_suite());
    srunner_add_suite(sr, loop_suite());
    srunner_add_suite(sr, future_suite());
    srunner_add_suite(sr, xchan_suite());
    srunner_add_suite(sr, run_loops_suite());
    srunner_add_suite(sr, chores_suite());
    srunner_add_suite(sr, uring_suite());
    srunner_add_suite(sr, demos_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
