/* trace.c: observing tasks. The scheduler calls coro__note at each task
 * event while someone observes (l->noting); this file passes the event to
 * coro_set_task_hook's function, writes it to CORO_TRACE's file, keeps
 * each task's accounts (time spent running, runs, the longest run), and
 * tells CORO_DEBUG's slow-task warning and the stall watchdog as runs
 * start and end.
 *
 * The trace is Chrome's trace-event format, JSON array flavour: one file
 * per process, one "process" per loop, one "thread" (track) per task, and
 * for each interval a complete event ("ph": "X") named for what the task
 * was doing: running, ready, or what it waited on. A running interval
 * carries the task's accounts so far.
 *
 * Accounting reads the monotonic clock once per switch: the run that ends
 * and the run that starts next share the reading (about 30 ns here, most
 * of what accounting costs). A note that neither starts nor ends a run
 * reads no clock unless the trace, the hook or CORO_DEBUG wants its time.
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLOW_NS (100 * 1000000LL) /* asyncio's slow-callback threshold */

/* A task's state as the observers last saw it (t->note_state). */
enum { SEEN_NONE, SEEN_READY, SEEN_RUNNING, SEEN_PARKED /* + wait kind */ };

static __thread coro_task_hook_fn tls_hook;
static __thread void *tls_hook_arg;
static __thread int tls_accounting = -1; /* -1: CORO_ACCOUNTING says */

void coro_set_task_hook(coro_task_hook_fn fn, void *arg)
{
    tls_hook = fn;
    tls_hook_arg = arg;
}

/* The trace file, shared by the process's loops. While no loop traces it
 * stays a complete JSON array, "]" included; the next loop that traces
 * writes over the "]" and goes on, so a program that runs coro_run several
 * times gets them all in one file. A new CORO_TRACE path starts a new
 * file. */
static pthread_mutex_t trace_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *trace_file;
static char *trace_path;    /* its name, or the name that failed */
static int trace_failed;
static int trace_events;    /* written so far: commas go between them */
static int64_t trace_epoch;
static unsigned trace_loops;  /* loops that ever traced: their pids */
static unsigned trace_active; /* loops tracing now */
static long trace_end;        /* where the closing "]" starts */

static void trace_forget(void)
{
    if (trace_file)
        fclose(trace_file);
    trace_file = NULL;
    free(trace_path);
    trace_path = NULL;
    trace_failed = 0;
    trace_events = 0;
    trace_loops = 0;
}

static void trace_at_exit(void)
{
    pthread_mutex_lock(&trace_lock);
    if (trace_active == 0) /* else a loop still runs: leave it be */
        trace_forget();
    pthread_mutex_unlock(&trace_lock);
}

/* fork(): the lock must not be held by a thread the child will not have,
 * and the child must not write to its parent's trace: it closes its copy
 * (what a parent's thread left unwritten in the buffer is dropped with the
 * descriptor) and does not trace to that path, which would truncate the
 * parent's file. */
static void trace_before_fork(void)
{
    pthread_mutex_lock(&trace_lock);
}

static void trace_after_fork_parent(void)
{
    pthread_mutex_unlock(&trace_lock);
}

static void trace_after_fork_child(void)
{
    pthread_mutex_init(&trace_lock, NULL);
    if (trace_file) {
        close(fileno(trace_file));
        fclose(trace_file);
        trace_file = NULL;
        trace_failed = 1; /* silently: this path is the parent's */
    }
    trace_active = 0;
}

static void trace_fork_handlers(void)
{
    pthread_atfork(trace_before_fork, trace_after_fork_parent,
                   trace_after_fork_child);
}

/* Opens path, or goes on with it, for a loop that starts. Lock held. */
static int trace_open(const char *path)
{
    static int registered;
    if (trace_path && strcmp(trace_path, path) != 0 && trace_active == 0)
        trace_forget();
    if (trace_file) {
        if (trace_active == 0 && fseek(trace_file, trace_end, SEEK_SET) != 0)
            return 0;
        return 1;
    }
    if (trace_failed)
        return 0;
    trace_path = strdup(path);
    trace_file = fopen(path, "w+e");
    if (!trace_file || !trace_path) {
        trace_failed = 1;
        if (trace_file)
            fclose(trace_file);
        trace_file = NULL;
        fprintf(stderr, "coro: CORO_TRACE: cannot write %s; not tracing\n",
                path);
        return 0;
    }
    fputs("[\n", trace_file);
    trace_epoch = coro__clock_ns();
    if (!registered)
        registered = atexit(trace_at_exit) == 0;
    return 1;
}

/* A loop stops tracing: the file is made whole until another starts. */
static void trace_pause(void)
{
    if (--trace_active > 0 || !trace_file)
        return;
    trace_end = ftell(trace_file);
    fputs("\n]\n", trace_file);
    fflush(trace_file);
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* Starts an event: the comma between events, then the common fields. Lock
 * held. */
static FILE *trace_event(const char *ph, unsigned pid)
{
    FILE *f = trace_file;
    fputs(trace_events++ ? ",\n" : "", f);
    fprintf(f, "{\"ph\":\"%s\",\"pid\":%u", ph, pid);
    return f;
}

static void trace_interval(struct coro__loop *l, struct coro_task *t,
                           int64_t now)
{
    const struct coro__acct *a = &t->extra->acct; /* seen: it has one */
    const char *what = t->note_state == SEEN_READY     ? "ready"
                       : t->note_state == SEEN_RUNNING ? "running"
                          : coro__wait_name(t->note_state - SEEN_PARKED);
    pthread_mutex_lock(&trace_lock);
    if (trace_file) {
        FILE *f = trace_event("X", l->trace_pid);
        fprintf(f, ",\"tid\":%llu,\"ts\":%.3f,\"dur\":%.3f,\"cat\":\"%s\","
                   "\"name\":",
                (unsigned long long)t->id,
                (double)(a->note_at - trace_epoch) / 1e3,
                (double)(now - a->note_at) / 1e3,
                t->note_state >= SEEN_PARKED ? "parked" : what);
        json_string(f, what);
        if (t->note_state == SEEN_RUNNING)
            fprintf(f, ",\"args\":{\"runs\":%llu,\"ran_ms\":%.3f,"
                       "\"longest_ms\":%.3f}",
                    (unsigned long long)a->runs, (double)a->ran_ns / 1e6,
                    (double)a->longest_ns / 1e6);
        fputc('}', f);
    }
    pthread_mutex_unlock(&trace_lock);
}

static void trace_name(struct coro__loop *l, struct coro_task *t)
{
    char name[64];
    const char *site = coro__spawn_site(t);
    snprintf(name, sizeof name, "#%llu %s%s%s", (unsigned long long)t->id,
             coro__name(t), site ? " " : "", site ? site : "");
    pthread_mutex_lock(&trace_lock);
    if (trace_file) {
        FILE *f = trace_event("M", l->trace_pid);
        fprintf(f, ",\"tid\":%llu,\"name\":\"thread_name\",\"args\":"
                   "{\"name\":",
                (unsigned long long)t->id);
        json_string(f, name);
        fputs("}}", f);
    }
    pthread_mutex_unlock(&trace_lock);
}

/* Whether an environment variable is set to something other than "0". */
static int env_flag(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

void coro__observe_init(struct coro__loop *l)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, trace_fork_handlers);
    l->hook = tls_hook;
    l->hook_arg = tls_hook_arg;
    l->debug = env_flag("CORO_DEBUG");
    l->accounting = tls_accounting >= 0 ? tls_accounting != 0
                                        : env_flag("CORO_ACCOUNTING");
    const char *path = getenv("CORO_TRACE");
    if (path && *path) {
        pthread_mutex_lock(&trace_lock);
        if (trace_open(path)) {
            trace_active++;
            l->tracing = 1;
            l->trace_pid = ++trace_loops;
            FILE *f = trace_event("M", l->trace_pid);
            fprintf(f, ",\"name\":\"process_name\",\"args\":{\"name\":"
                       "\"coro loop %u\"}}",
                    l->trace_pid);
        }
        pthread_mutex_unlock(&trace_lock);
    }
    coro__watchdog_init(l);
    coro__observe_update(l);
}

void coro__observe_term(struct coro__loop *l)
{
    coro__debug_term(l);
    if (l->tracing) {
        pthread_mutex_lock(&trace_lock);
        trace_pause();
        pthread_mutex_unlock(&trace_lock);
        l->tracing = 0;
    }
}

void coro__observe_update(struct coro__loop *l)
{
    int was = l->noting;
    l->noting = l->hook || l->debug || l->tracing || l->accounting ||
                l->watching;
    struct coro_task *t = l->current;
    if (!was && l->noting) {
        /* What the tasks were last seen doing is stale: nobody looked. */
        for (struct coro__link *n = l->all.head; n; n = n->next)
            CORO__TASK_OF(n)->note_state = SEEN_NONE;
        l->now_fresh = 0;
        if (t && coro__extra_get(t)) {
            t->extra->acct.note_at = coro__clock_ns();
            t->note_state = SEEN_RUNNING;
            t->extra->acct.runs++;
        }
    }
    if (l->watching && t && t->note_state == SEEN_RUNNING)
        coro__watchdog_run(l, t, t->extra->acct.note_at);
}

void coro__accounts(const struct coro_task *t, int64_t *ran,
                    int64_t *longest)
{
    *ran = *longest = 0;
    if (!t->extra)
        return; /* never observed */
    const struct coro__acct *a = &t->extra->acct;
    *ran = a->ran_ns;
    *longest = a->longest_ns;
    if (t->state == CORO__RUNNING && t->note_state == SEEN_RUNNING &&
        t->loop->noting) {
        int64_t now = coro__clock_ns() - a->note_at;
        *ran += now;
        if (now > *longest)
            *longest = now;
    }
}

uint64_t coro__runs(const struct coro_task *t)
{
    return t->extra ? t->extra->acct.runs : 0;
}

int coro_set_accounting(int on)
{
    struct coro__loop *l = coro__loop();
    int old = l ? l->accounting : tls_accounting > 0;
    tls_accounting = on != 0;
    if (l) {
        l->accounting = on != 0;
        coro__observe_update(l);
    }
    return old;
}

/* When a note happens. The run that ends and the run that starts next
 * share one reading of the clock; a note that neither starts nor ends a
 * run reads none unless the trace, the hook or CORO_DEBUG records its
 * time. */
static int64_t note_time(struct coro__loop *l, int note, int ends_run)
{
    if (note == CORO__NOTE_RUN && l->now_fresh) {
        l->now_fresh = 0;
        return l->now_ns;
    }
    if (!ends_run && note != CORO__NOTE_RUN && !l->tracing && !l->hook &&
        !l->debug)
        return 0;
    int64_t now = coro__clock_ns();
    if (l->now_fresh) /* the next run starts no earlier than this note */
        l->now_ns = now;
    return now;
}

/* t's run, which started at a->note_at, ends now. */
static void run_ended(struct coro__loop *l, struct coro_task *t,
                      struct coro__acct *a, int64_t now)
{
    int64_t ran = now - a->note_at;
    a->ran_ns += ran;
    if (ran > a->longest_ns)
        a->longest_ns = ran;
    l->now_ns = now;
    l->now_fresh = 1;
    if (l->debug && ran > SLOW_NS)
        coro__debug_slow(t, ran);
    if (l->watching)
        coro__watchdog_stop(l, t, now);
}

/* What the trace and the hook make of a note: out of line, so that
 * accounting alone does not pay for their frame. */
static __attribute__((noinline)) void record(struct coro__loop *l,
                                             struct coro_task *t, int note,
                                             int64_t now)
{
    if (l->tracing) {
        if (note == CORO__NOTE_SPAWN)
            trace_name(l, t);
        else if (t->note_state != SEEN_NONE)
            trace_interval(l, t, now);
    }
    if (l->hook) {
        static const enum coro_task_event_kind kinds[] = {
            [CORO__NOTE_SPAWN] = CORO_TASK_SPAWN,
            [CORO__NOTE_RUN] = CORO_TASK_RUN,
            [CORO__NOTE_PARK] = CORO_TASK_PARK,
            [CORO__NOTE_READY] = CORO_TASK_READY,
            [CORO__NOTE_END] = CORO_TASK_END,
        };
        coro_task_event ev = {
            .kind = kinds[note],
            .time = (double)now / 1e9,
            .task = t->id,
            .name = coro__name(t),
            .reason = note == CORO__NOTE_PARK ? coro__wait_name(t->wait_kind)
                                              : NULL,
        };
        l->hook(&ev, l->hook_arg);
    }
}

void coro__note(struct coro__loop *l, struct coro_task *t, int note)
{
    /* A task's times live in its extra block, made at its first note (so
     * that tasks nobody observes do not pay for them). Without memory for
     * it the task's times go unrecorded, and its events still go out: it
     * is seen doing nothing (SEEN_NONE), so no run of it is under way. */
    struct coro__extra *x = coro__extra_get(t);
    if (CORO__UNLIKELY(!x)) {
        t->note_state = SEEN_NONE;
        if (l->tracing || l->hook)
            record(l, t, note, note_time(l, note, 0));
        return;
    }
    int ends_run = t->note_state == SEEN_RUNNING && note != CORO__NOTE_RUN;
    int64_t now = note_time(l, note, ends_run);
    if (ends_run)
        run_ended(l, t, &x->acct, now);
    if (CORO__UNLIKELY(l->tracing || l->hook))
        record(l, t, note, now);
    x->acct.note_at = now;
    switch (note) {
    case CORO__NOTE_RUN:
        t->note_state = SEEN_RUNNING;
        x->acct.runs++;
        if (l->watching)
            coro__watchdog_run(l, t, now);
        break;
    case CORO__NOTE_PARK:
        t->note_state = (unsigned char)(SEEN_PARKED + t->wait_kind);
        break;
    case CORO__NOTE_END:
        t->note_state = SEEN_NONE;
        break;
    default:
        t->note_state = SEEN_READY;
        break;
    }
}
