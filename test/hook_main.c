/* The hooks' test runner: test_hook.c's suite, in a program that links
 * hook.c in (the Makefile's run_hook_tests), apart from run_tests, whose
 * suites expect libc's own blocking calls. */
#include <stdlib.h>

#include "helpers.h"

int main(void)
{
    SRunner *sr = srunner_create(hook_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
