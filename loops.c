/* loops.c: the process's list of running loops.
 *
 * A loop is otherwise reachable only through its thread's thread-local
 * pointer, which nothing outside that thread can read. Two readers need
 * them all: gdb (gdb/coro-gdb.py walks coro__loops, by its symbol, in a
 * live process or a core file, where it cannot call into the program), and
 * the stall watchdog's thread (watchdog.c), which must find every loop
 * whose task runs too long.
 *
 * The list is changed only as a loop starts and ends (coro_run), under a
 * mutex, so it costs nothing per switch. Its head is a global with hidden
 * visibility: not exported from libcoro.so, but in its symbol table and
 * debug information, where gdb looks.
 */
#include "internal.h"

#include <pthread.h>
#include <unistd.h>

struct coro__list coro__loops;
pthread_mutex_t coro__loops_lock = PTHREAD_MUTEX_INITIALIZER;

/* A child of fork() has one thread and none of its parent's running
 * loops: even the forking thread's loop, copied, never runs again (coro.h
 * says so). It starts with an empty list and a lock nobody holds. */
static void loops_before_fork(void)
{
    pthread_mutex_lock(&coro__loops_lock);
}

static void loops_after_fork_parent(void)
{
    pthread_mutex_unlock(&coro__loops_lock);
}

static void loops_after_fork_child(void)
{
    for (struct coro__link *n = coro__loops.head; n;) {
        struct coro__link *next = n->next;
        CORO__ENTRY(n, struct coro__loop, loops_link)->listed = 0;
        n->prev = n->next = NULL;
        n = next;
    }
    coro__loops.head = coro__loops.tail = NULL;
    pthread_mutex_init(&coro__loops_lock, NULL);
    coro__watchdog_after_fork();
}

static void loops_fork_handlers(void)
{
    pthread_atfork(loops_before_fork, loops_after_fork_parent,
                   loops_after_fork_child);
}

void coro__loops_add(struct coro__loop *l)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, loops_fork_handlers);
    l->tid = gettid();
    l->thread = pthread_self();
    pthread_mutex_lock(&coro__loops_lock);
    coro__list_append(&coro__loops, &l->loops_link);
    l->listed = 1;
    pthread_mutex_unlock(&coro__loops_lock);
}

void coro__loops_remove(struct coro__loop *l)
{
    pthread_mutex_lock(&coro__loops_lock);
    if (l->listed)
        coro__list_remove(&coro__loops, &l->loops_link);
    l->listed = 0;
    pthread_mutex_unlock(&coro__loops_lock);
}
