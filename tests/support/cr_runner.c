/* cr_runner.c - linked into every Criterion binary (tests/unit, tests/integration).
 *
 * Criterion's runner, the process that starts each test in a child of its
 * own and runs none of this project's code, leaks one 48-byte block of its
 * own (calloc in libcriterion 2.4.1) when two tests with a .timeout run at
 * once: itest_direct under `make asan`, in every run on 2026-12-04. So
 * LeakSanitizer's check at exit is turned off in the runner only. A test's
 * child is told apart by BXFI_MAP, which BoxFort (Criterion's sandbox)
 * passes to it alone; there the check runs as before, and run.sh fails a
 * suite whose log has a report. */
#include <stdlib.h>

/* LeakSanitizer's hook (sanitizer/lsan_interface.h): nonzero turns its check off. */
int __lsan_is_turned_off(void);

int __lsan_is_turned_off(void)
{
    return getenv("BXFI_MAP") == NULL;
}
