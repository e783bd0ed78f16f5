#include "timeline.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "coro.h"

#define NAME_COLS 18 /* row label, then '|', the cells, '|': 80 in all */
#define CELLS     60
#define MAX_ROWS  24 /* more would scroll the story away */

/* What a row does over a span, in rising order of what a cell shows when
 * several share it: a task that ran at all in a slice is shown running. */
enum what { READY, WAITED, BLOCKED, RAN, NONE };
static const char cell_char[] = { '.', '~', '=', '#', ' ' };

struct span {
    double    start, end;
    enum what what;
};

struct row {
    char               label[NAME_COLS + 1];
    unsigned long long task; /* its id, or 0 for a synchronous row */
    struct span       *spans;
    size_t             n, cap;
    double             since; /* start of the open span */
    enum what          now;   /* what it does since then, NONE: nothing */
};

static struct {
    int         on;
    pthread_t   thread; /* the one recording; workers' blocking is theirs */
    double      t0;
    struct row *rows;
    size_t      n, cap;
    size_t      current; /* the synchronous row being recorded, or n */
    int         nomem;   /* an allocation failed: the chart says so */
} tl;

static struct row *add_row(void)
{
    if (tl.n == tl.cap) {
        size_t cap = tl.cap ? 2 * tl.cap : 16;
        struct row *rows = realloc(tl.rows, cap * sizeof *rows);
        if (!rows) {
            tl.nomem = 1;
            return NULL;
        }
        tl.rows = rows;
        tl.cap = cap;
    }
    struct row *r = &tl.rows[tl.n++];
    memset(r, 0, sizeof *r);
    r->now = NONE;
    return r;
}

static void add_span(struct row *r, double start, double end, enum what w)
{
    if (w == NONE || end <= start)
        return;
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 8;
        struct span *spans = realloc(r->spans, cap * sizeof *spans);
        if (!spans) {
            tl.nomem = 1;
            return;
        }
        r->spans = spans;
        r->cap = cap;
    }
    r->spans[r->n++] = (struct span){ start, end, w };
}

/* Tasks are numbered 1, 2, ... per loop, and a variant may run several
 * loops one after another: the latest row with the id is the task's. A
 * spawn always starts a row. */
static struct row *task_row(const coro_task_event *ev)
{
    if (ev->kind == CORO_TASK_SPAWN)
        return NULL;
    for (size_t i = tl.n; i-- > 0;)
        if (tl.rows[i].task == ev->task)
            return &tl.rows[i];
    return NULL;
}

static void on_task_event(const coro_task_event *ev, void *arg)
{
    (void)arg;
    struct row *r = task_row(ev);
    if (!r) {
        if (ev->kind != CORO_TASK_SPAWN || !(r = add_row()))
            return;
        r->task = ev->task;
        snprintf(r->label, sizeof r->label, "#%llu %s", ev->task, ev->name);
    } else {
        add_span(r, r->since, ev->time, r->now);
    }
    static const enum what after[] = {
        [CORO_TASK_SPAWN] = READY,
        [CORO_TASK_RUN] = RAN,
        [CORO_TASK_PARK] = WAITED,
        [CORO_TASK_READY] = READY,
        [CORO_TASK_END] = NONE,
    };
    r->now = after[ev->kind];
    r->since = ev->time;
}

static void forget(void)
{
    for (size_t i = 0; i < tl.n; i++)
        free(tl.rows[i].spans);
    free(tl.rows);
    memset(&tl, 0, sizeof tl);
}

void timeline_start(void)
{
    forget();
    tl.on = 1;
    tl.thread = pthread_self();
    tl.t0 = coro_now();
    coro_set_task_hook(on_task_event, NULL);
}

int timeline_recording(void)
{
    return tl.on && pthread_equal(tl.thread, pthread_self());
}

void timeline_row(const char *fmt, ...)
{
    if (!timeline_recording())
        return;
    char label[NAME_COLS + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(label, sizeof label, fmt, ap);
    va_end(ap);
    for (tl.current = 0; tl.current < tl.n; tl.current++)
        if (!tl.rows[tl.current].task &&
            strcmp(tl.rows[tl.current].label, label) == 0)
            return;
    struct row *r = add_row();
    if (!r)
        return; /* tl.current == tl.n: nothing is recorded */
    memcpy(r->label, label, sizeof label);
    tl.current = tl.n - 1;
}

void timeline_blocked(double start, double end)
{
    if (!timeline_recording())
        return;
    if (tl.current >= tl.n)
        timeline_row("(blocking)");
    if (tl.current < tl.n)
        add_span(&tl.rows[tl.current], start, end, BLOCKED);
}

/* What the row shows in the cell [from, to): the strongest overlap. */
static char cell(const struct row *r, double from, double to)
{
    enum what best = NONE;
    for (size_t i = 0; i < r->n; i++) {
        const struct span *s = &r->spans[i];
        if (s->start < to && s->end > from &&
            (best == NONE || s->what > best))
            best = s->what;
    }
    return cell_char[best];
}

/* The axis below the rows: a tick label every quarter of the width. */
static void axis(FILE *out, double total)
{
    char line[NAME_COLS + CELLS + 16];
    memset(line, ' ', sizeof line);
    for (int q = 0; q <= 4; q++) {
        char label[16];
        int digits = total < 1 ? 3 : total < 10 ? 2 : total < 100 ? 1 : 0;
        int len = snprintf(label, sizeof label, "%.*f%s", digits,
                           total * q / 4, q == 4 ? " s" : "");
        int at = NAME_COLS + 1 + q * CELLS / 4;
        if (q == 4)
            at = NAME_COLS + 2 + CELLS - len;
        memcpy(line + at, label, (size_t)len);
    }
    int end = NAME_COLS + 2 + CELLS;
    while (end > 0 && line[end - 1] == ' ')
        end--;
    fprintf(out, "%.*s\n", end, line);
}

void timeline_finish(FILE *out, const char *variant)
{
    if (!tl.on)
        return;
    coro_set_task_hook(NULL, NULL);
    double t1 = coro_now();
    for (size_t i = 0; i < tl.n; i++) { /* close what is still open */
        struct row *r = &tl.rows[i];
        add_span(r, r->since, t1, r->now);
    }
    double total = t1 - tl.t0 > 0 ? t1 - tl.t0 : 1e-9;
    fprintf(out, "\ntimeline of %s, %.3f s: # ran  ~ waited  . ready  "
                 "= blocked the thread\n",
            variant, total);
    size_t shown = tl.n < MAX_ROWS ? tl.n : MAX_ROWS - 1;
    for (size_t i = 0; i < shown; i++) {
        const struct row *r = &tl.rows[i];
        char cells[CELLS + 1];
        for (int c = 0; c < CELLS; c++)
            cells[c] = cell(r, tl.t0 + total * c / CELLS,
                            tl.t0 + total * (c + 1) / CELLS);
        cells[CELLS] = '\0';
        fprintf(out, "%-*.*s|%s|\n", NAME_COLS, NAME_COLS, r->label, cells);
    }
    if (shown < tl.n)
        fprintf(out, "%-*s (and %zu more rows)\n", NAME_COLS, "...",
                tl.n - shown);
    axis(out, total);
    if (tl.nomem)
        fprintf(out, "(out of memory: some of it was not recorded)\n");
    forget();
}
