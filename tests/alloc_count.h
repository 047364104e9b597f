/* alloc_count.h - counts heap allocations inside a window, for the tests
 * and benchmarks that hold the per-request paths to "no allocation".
 *
 * Include it in exactly one file of a program: it defines malloc, calloc,
 * realloc and free, which count while a window is open and forward to
 * glibc's own. The sanitizers replace the allocator themselves, so under
 * them nothing is defined and alloc_count_available() says so.
 *
 *   alloc_count_start();
 *   ... the work ...
 *   unsigned long n = alloc_count_stop();   (calls of the four functions)
 */
#ifndef ALLOC_COUNT_H
#define ALLOC_COUNT_H

#include <stdbool.h>
#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define ALLOC_COUNT_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define ALLOC_COUNT_OFF 1
#endif
#endif

static volatile int alloc_count_open;        /* 1 inside the window */
static volatile unsigned long alloc_count_n; /* calls seen inside it */

#ifndef ALLOC_COUNT_OFF
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

void *malloc(size_t n);
void *calloc(size_t n, size_t size);
void *realloc(void *p, size_t n);
void free(void *p);

void *malloc(size_t n)
{
    alloc_count_n += alloc_count_open;
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    alloc_count_n += alloc_count_open;
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    alloc_count_n += alloc_count_open;
    return __libc_realloc(p, n);
}

void free(void *p)
{
    alloc_count_n += alloc_count_open && p;
    __libc_free(p);
}
#endif

/* False under the sanitizers: nothing is counted. */
static inline bool alloc_count_available(void)
{
#ifdef ALLOC_COUNT_OFF
    return false;
#else
    return true;
#endif
}

static inline void alloc_count_start(void)
{
    alloc_count_n = 0;
    alloc_count_open = 1;
}

/* Closes the window; returns the calls counted in it. */
static inline unsigned long alloc_count_stop(void)
{
    alloc_count_open = 0;
    return alloc_count_n;
}

#endif
