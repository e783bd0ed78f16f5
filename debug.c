/* debug.c: seeing inside a loop. coro_dump and the deadlock report, stack
 * high-water marks, the dump on SIGQUIT, and CORO_DEBUG's warnings.
 *
 * Everything here runs on the loop's thread at a safe point: the SIGQUIT
 * handler only writes a byte to a pipe that the loop polls like any fd.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

/* Global (hidden), not static: gdb/coro-gdb.py reads it by this name,
 * and every compiler keeps a global's symbol and location. */
const char *const coro__wait_names[] = {
    [CORO__W_NONE] = "ready",
    [CORO__W_SLEEP] = "sleep",
    [CORO__W_JOIN] = "join",
    [CORO__W_GATHER] = "gather",
    [CORO__W_WAIT] = "wait",
    [CORO__W_FD_READ] = "read fd",
    [CORO__W_FD_WRITE] = "write fd",
    [CORO__W_BLOCKING] = "blocking call",
    [CORO__W_CHAN_SEND] = "channel send",
    [CORO__W_CHAN_RECV] = "channel receive",
    [CORO__W_SELECT] = "select",
    [CORO__W_QUEUE_PUT] = "queue put",
    [CORO__W_QUEUE_GET] = "queue get",
    [CORO__W_QUEUE_JOIN] = "queue join",
    [CORO__W_MUTEX] = "mutex",
    [CORO__W_SEM] = "semaphore",
    [CORO__W_EVENT] = "event",
    [CORO__W_COND] = "condition",
    [CORO__W_AS_COMPLETED] = "as completed",
    [CORO__W_GROUP] = "task group",
    [CORO__W_BARRIER] = "barrier",
    [CORO__W_FUTURE] = "future",
    [CORO__W_XCHAN_SEND] = "thread channel send",
    [CORO__W_XCHAN_RECV] = "thread channel receive",
};

const char *coro__wait_name(int kind)
{
    if (kind < 0 ||
        kind >= (int)(sizeof coro__wait_names / sizeof *coro__wait_names))
        return "?";
    return coro__wait_names[kind];
}

/* ----------------------------------------------------------------------
 * Stack high-water marks
 * ---------------------------------------------------------------------- */

size_t coro_stack_high_water(const coro_task *t)
{
    /* Another thread's task runs on its thread's stack, which may be
     * unmapped under the scan: not ours to read. */
    if (!t || t->loop != coro__loop())
        return 0;
    size_t len;
    const char *lo = coro__stack_usable(t, &len);
    const char *hi = lo + len;
    if (t->shared) {
        size_t hw = t->shared_hw;
        if (t->state == CORO__PARKED && t->saved_sp &&
            (size_t)(hi - t->saved_sp) > hw)
            hw = (size_t)(hi - t->saved_sp);
        return hw;
    }
    int saved = errno;
    size_t hw = (size_t)(hi - coro__stack_deepest(lo, hi));
    errno = saved;
    return hw;
}

/* ----------------------------------------------------------------------
 * coro_dump
 * ---------------------------------------------------------------------- */

/* What a task is doing, in words: who waits on whom, for deadlock
 * reports. Every fact comes from its snapshot; the wait's kind only picks
 * the words. */
static void describe(const struct coro_task *t,
                     const struct coro_task_info *in, double now, char *buf,
                     size_t cap)
{
    switch (in->state) {
    case CORO_STATE_ENDED:
        snprintf(buf, cap, "ended, not yet joined%s%s",
                 in->error ? ": " : "", in->error ? strerror(in->error) : "");
        return;
    case CORO_STATE_READY:
        snprintf(buf, cap, "ready");
        return;
    case CORO_STATE_RUNNING:
        snprintf(buf, cap, "running");
        return;
    default:
        break;
    }
    switch (t->wait_kind) {
    case CORO__W_SLEEP:
        if (in->wait_deadline >= 0)
            snprintf(buf, cap, "sleeping, %.3f s to go",
                     in->wait_deadline - now);
        else
            snprintf(buf, cap, "sleeping until cancelled");
        return;
    case CORO__W_JOIN:
        snprintf(buf, cap, "joining task #%llu (%s)", in->wait_task,
                 coro__name(in->wait_object));
        return;
    case CORO__W_GATHER:
    case CORO__W_WAIT:
        snprintf(buf, cap, "%s %zu task%s, %zu not ended",
                 t->wait_kind == CORO__W_GATHER ? "gathering" : "waiting on",
                 in->wait_tasks, in->wait_tasks == 1 ? "" : "s",
                 in->wait_pending);
        return;
    case CORO__W_FD_READ:
    case CORO__W_FD_WRITE:
        snprintf(buf, cap, "waiting to %s fd %d",
                 t->wait_kind == CORO__W_FD_READ ? "read" : "write",
                 in->wait_fd);
        return;
    case CORO__W_GROUP:
        snprintf(buf, cap, "awaiting task group #%llu",
                 coro__group_id(t->wait_what));
        return;
    case CORO__W_BLOCKING:
        snprintf(buf, cap, "in a blocking call on a worker thread");
        return;
    case CORO__W_MUTEX:
        if (in->wait_task)
            snprintf(buf, cap, "on a mutex (%p) held by task #%llu",
                     in->wait_object, in->wait_task);
        else
            snprintf(buf, cap, "on a mutex (%p) held in another loop",
                     in->wait_object);
        return;
    default:
        snprintf(buf, cap, "on %s %s (%p)",
                 strchr("aeiou", in->wait[0]) ? "an" : "a", in->wait,
                 in->wait_object);
        return;
    }
}

/* Where a task was spawned: "file.c:42" from the macro, else an address. */
static const char *site_text(const char *site, const void *pc, char *buf,
                             size_t cap)
{
    if (site)
        return site;
    snprintf(buf, cap, "%p", pc);
    return buf;
}

static const char *site_of(const struct coro_task *t, char *buf, size_t cap)
{
    return site_text(coro__spawn_site(t), coro__spawn_pc(t), buf, cap);
}

/* A duration as a person reads it: 1.23 s, 45.6 ms, 7.8 us. */
static const char *seconds_text(double s, char *buf, size_t cap)
{
    if (s >= 1)
        snprintf(buf, cap, "%.2f s", s);
    else if (s >= 1e-3)
        snprintf(buf, cap, "%.1f ms", s * 1e3);
    else
        snprintf(buf, cap, "%.1f us", s * 1e6);
    return buf;
}

static void dump_task(FILE *out, const struct coro_task *t, double now)
{
    struct coro_task_info in;
    if (coro_task_info(t, &in) != 0)
        return;
    char state[96], site[32], size[32], used[32], group[32] = "";
    describe(t, &in, now, state, sizeof state);
    if (coro__task_group(t))
        snprintf(group, sizeof group, " [group #%llu]",
                 coro__group_id(coro__task_group(t)));
    snprintf(size, sizeof size, "%zuK%s", in.stack_size >> 10,
             in.shared_stack ? " shared" : "");
    if (in.stack_used < 10 << 10)
        snprintf(used, sizeof used, "%.1fK", (double)in.stack_used / 1024);
    else
        snprintf(used, sizeof used, "%zuK", in.stack_used >> 10);
    char ran[64] = "";
    if (in.runs)
        snprintf(ran, sizeof ran, "; ran %s in %llu run%s, longest %s",
                 seconds_text(in.run_time, (char[16]){ 0 }, 16), in.runs,
                 in.runs == 1 ? "" : "s",
                 seconds_text(in.longest_run, (char[16]){ 0 }, 16));
    fprintf(out, "  #%-5llu %-18.18s %s%s%s%s, for %.2f s; from %s; "
                 "stack %s, used %s%s\n",
            in.id, in.name, state, in.cancelling ? " [cancelled]" : "",
            in.shielded ? " [shielded]" : "", group, now - in.since,
            site_text(in.site, in.spawn_pc, site, sizeof site), size, used,
            ran);
}

void coro_dump(FILE *out)
{
    struct coro__loop *l = coro__loop();
    if (!l || !out)
        return;
    int saved = errno;
    double now = coro_now();
    fprintf(out, "coro: %zu task%s in this thread's loop:\n", l->ntasks,
            l->ntasks == 1 ? "" : "s");
    for (const struct coro__link *n = l->all.head; n; n = n->next)
        dump_task(out, CORO__TASK_OF(n), now);
    fflush(out);
    errno = saved;
}

void coro__deadlock_report(struct coro__loop *l)
{
    (void)l;
    fprintf(stderr, "coro: deadlock: no task can ever wake (no timer, no fd, "
                    "no blocking call). Cancelling them all; coro_run will "
                    "return EDEADLK.\n");
    coro_dump(stderr);
}

/* ----------------------------------------------------------------------
 * The dump on SIGQUIT
 * ---------------------------------------------------------------------- */

#define SIGQUIT_LOOPS 64

/* Write ends of the pipes of the loops that want a dump. */
static atomic_int sigquit_pipes[SIGQUIT_LOOPS] = { 0 };
static atomic_int sigquit_installed;

/* Async-signal-safe: writes a byte to each registered pipe. */
static void on_sigquit(int signo)
{
    int saved = errno, any = 0;
    for (int i = 0; i < SIGQUIT_LOOPS; i++) {
        int fd = atomic_load(&sigquit_pipes[i]) - 1;
        if (fd >= 0) {
            ssize_t n = coro__write_raw(fd, "q", 1);
            (void)n;
            any = 1;
        }
    }
    if (!any) { /* nobody wants it: what SIGQUIT does by default */
        signal(signo, SIG_DFL);
        raise(signo);
    }
    errno = saved;
}

/* A forked child runs none of its parent's loops: a SIGQUIT to it must not
 * write to their pipes. */
static void sigquit_after_fork_child(void)
{
    for (int i = 0; i < SIGQUIT_LOOPS; i++)
        atomic_store(&sigquit_pipes[i], 0);
}

static void sigquit_ready(struct coro__pollable *self, uint32_t events)
{
    struct coro__loop *l = CORO__CONTAINER_OF(self, struct coro__loop,
                                              sigquit);
    char buf[64];
    (void)events;
    while (read(l->sigquit_fd, buf, sizeof buf) > 0)
        ;
    fprintf(stderr, "coro: SIGQUIT\n");
    coro_dump(stderr);
}

static void sigquit_off(struct coro__loop *l)
{
    if (l->sigquit_fd < 0)
        return;
    for (int i = 0; i < SIGQUIT_LOOPS; i++) {
        int mine = l->sigquit_wfd + 1;
        if (atomic_compare_exchange_strong(&sigquit_pipes[i], &mine, 0))
            break;
    }
    coro__poller_remove(&l->poller, &l->sigquit);
    close(l->sigquit_wfd);
    close(l->sigquit_fd);
    l->sigquit_fd = l->sigquit_wfd = -1;
}

int coro_dump_on_sigquit(int on)
{
    struct coro__loop *l = coro__loop();
    if (!l || !l->current)
        return EPERM;
    if (!on || l->sigquit_fd >= 0) {
        if (!on)
            sigquit_off(l);
        return 0;
    }
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0)
        return errno;
    l->sigquit.ready = sigquit_ready;
    int err = coro__poller_add(&l->poller, p[0], EPOLLIN, &l->sigquit);
    int slot = -1;
    for (int i = 0; !err && i < SIGQUIT_LOOPS && slot < 0; i++) {
        int empty = 0;
        if (atomic_compare_exchange_strong(&sigquit_pipes[i], &empty,
                                           p[1] + 1))
            slot = i;
    }
    if (!err && slot < 0)
        err = EAGAIN; /* SIGQUIT_LOOPS loops already listen */
    if (err) {
        close(p[0]);
        close(p[1]);
        return err;
    }
    l->sigquit_fd = p[0];
    l->sigquit_wfd = p[1];
    if (!atomic_exchange(&sigquit_installed, 1)) {
        pthread_atfork(NULL, NULL, sigquit_after_fork_child);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigquit;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGQUIT, &sa, NULL);
    }
    return 0;
}

/* ----------------------------------------------------------------------
 * CORO_DEBUG's warnings
 * ---------------------------------------------------------------------- */

void coro__debug_slow(struct coro_task *t, int64_t ran_ns)
{
    char site[32];
    fprintf(stderr, "coro: warning: task #%llu \"%s\" (%s) ran %.0f ms "
                    "without suspending; the others waited\n",
            (unsigned long long)t->id, coro__name(t),
            site_of(t, site, sizeof site), (double)ran_ns / 1e6);
}

void coro__debug_end(struct coro__loop *l, struct coro_task *t)
{
    char site[32];
    if (t->mutexes)
        fprintf(stderr, "coro: warning: task #%llu \"%s\" (%s) ended "
                        "holding %u mutex%s; nobody can unlock them\n",
                (unsigned long long)t->id, coro__name(t),
                site_of(t, site, sizeof site), t->mutexes,
                t->mutexes == 1 ? "" : "es");
    if (t != l->main || l->nlive == 0)
        return;
    fprintf(stderr, "coro: warning: main returned with %zu task%s still "
                    "alive; cancelling:\n",
            l->nlive, l->nlive == 1 ? "" : "s");
    for (struct coro__link *n = l->all.head; n; n = n->next) {
        const struct coro_task *o = CORO__TASK_OF(n);
        if (o->state != CORO__DONE)
            fprintf(stderr, "coro: warning:   task #%llu \"%s\" (%s)\n",
                    (unsigned long long)o->id, coro__name(o),
                    site_of(o, site, sizeof site));
    }
}

void coro__debug_unjoined(struct coro_task *t)
{
    int err = coro__task_error(t);
    char site[32];
    if (!err || err == ECANCELED)
        return;
    fprintf(stderr, "coro: warning: task #%llu \"%s\" (%s) failed (%s) and "
                    "nobody joined it\n",
            (unsigned long long)t->id, coro__name(t),
            site_of(t, site, sizeof site), strerror(err));
}

void coro__debug_term(struct coro__loop *l)
{
    sigquit_off(l);
}
