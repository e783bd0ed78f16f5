/* The demos' --timeline: after a variant runs, one row per task over a
 * time axis, in plain text that fits 80 columns, so the synchronous
 * staircase and the asynchronous overlap can be seen at a glance.
 *
 * Asynchronous tasks are recorded through coro_set_task_hook: each cell
 * shows whether the task ran (#), waited parked (~) or sat ready (.) in
 * that slice of time. Synchronous work has no tasks to watch, so the demo
 * names a row (timeline_row) and its blocking calls are drawn on it as =,
 * time the whole thread was held.
 */
#ifndef CORO_DEMO_TIMELINE_H
#define CORO_DEMO_TIMELINE_H

#include <stdio.h>

/* Starts recording a variant: hooks the loops this thread starts from now
 * on, and takes now as time zero. Forgets what an earlier one recorded. */
void timeline_start(void);

/* Names the row that the synchronous blocking time recorded next goes
 * to (printf-style); a new name starts a new row. */
void timeline_row(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Records that the thread blocked from start to end (demo_now seconds) on
 * the current row. demo_block_sleep calls it while recording. */
void timeline_blocked(double start, double end);

/* Whether this thread records a timeline now: blocking on worker threads
 * is not drawn (their tasks show it as waiting). */
int timeline_recording(void);

/* Stops recording, draws the chart to out, and frees what was recorded.
 * Does nothing if timeline_start was not called. */
void timeline_finish(FILE *out, const char *variant);

#endif
