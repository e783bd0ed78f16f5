/* local.c: task-local values, asyncio's contextvars for C.
 *
 * Keys are process-wide, as pthread keys are: a library makes its key
 * once and uses it in every loop of every thread. A key is a slot of a
 * fixed table and a generation, so a key deleted, and its slot handed to
 * a new one, never reads the values set under the old.
 *
 * Values. A task's values are a block of slots, one per key index, each
 * pointing at a box: one value as one set made it, with a count of the
 * blocks holding it. A spawned task shares its spawner's block, as an
 * asyncio task gets a copy of a Context that is an immutable map: a spawn
 * copies nothing and cannot fail, and the first set in either task copies
 * the block, holding each box once more. A value's destructor runs when
 * the last block holding its box lets go, that is when every task that
 * held it has replaced it or ended: one pointer set once is destroyed
 * once, and never while a task can still read it. The alternative, a
 * destructor run by the task that set the value, would leave a child
 * that outlives its spawner reading freed memory.
 *
 * Blocks and boxes belong to one loop's tasks and are only touched on its
 * thread, so their counts are plain. Only the key table is shared between
 * threads, and it is lock-free, so a child forked while another thread
 * makes a key cannot find it locked.
 */
#include "internal.h"

#include <string.h>

/* ----------------------------------------------------------------------
 * Keys
 * ---------------------------------------------------------------------- */

/* A slot a coro_key_new is filling in. Not a key: every key is at least
 * CORO_KEYS_MAX (its generation, from 1, times CORO_KEYS_MAX, plus its
 * slot). */
#define KEY_BUSY 1ULL

struct key_slot {
    atomic_ullong        key;        /* the live key, 0 (free) or KEY_BUSY */
    unsigned long long   gen;        /* generations handed out; written by
                                        whoever took the slot from 0 */
    void (*_Atomic destructor)(void *); /* the live key's */
};

static struct key_slot keys[CORO_KEYS_MAX];

static unsigned key_index(coro_key key)
{
    return (unsigned)(key % CORO_KEYS_MAX);
}

static int key_live(coro_key key)
{
    return key >= CORO_KEYS_MAX &&
           atomic_load_explicit(&keys[key_index(key)].key,
                                memory_order_acquire) == key;
}

/* key's destructor: 0, or EINVAL if key is not live. Looking at the slot
 * again after reading the destructor catches a key deleted, and its slot
 * handed to a new key, in between: the new key's destructor is stored
 * (release) after the slot was freed. */
static int key_destructor(coro_key key, void (**out)(void *))
{
    if (!key_live(key))
        return EINVAL;
    *out = atomic_load_explicit(&keys[key_index(key)].destructor,
                                memory_order_acquire);
    return key_live(key) ? 0 : EINVAL;
}

/* The lowest free slot, so that blocks, sized by the highest index set,
 * stay small. */
int coro_key_new(void (*destructor)(void *), coro_key *key)
{
    if (!key)
        return EINVAL;
    for (unsigned i = 0; i < CORO_KEYS_MAX; i++) {
        struct key_slot *s = &keys[i];
        unsigned long long free_slot = 0;
        if (!atomic_compare_exchange_strong_explicit(
                &s->key, &free_slot, KEY_BUSY, memory_order_acquire,
                memory_order_relaxed))
            continue;
        coro_key k = ++s->gen * CORO_KEYS_MAX + i;
        atomic_store_explicit(&s->destructor, destructor,
                              memory_order_release);
        atomic_store_explicit(&s->key, k, memory_order_release);
        *key = k;
        return 0;
    }
    return EAGAIN;
}

int coro_key_delete(coro_key key)
{
    if (key < CORO_KEYS_MAX)
        return EINVAL;
    unsigned long long live = key;
    if (!atomic_compare_exchange_strong_explicit(
            &keys[key_index(key)].key, &live, 0, memory_order_acq_rel,
            memory_order_relaxed))
        return EINVAL;
    return 0;
}

/* ----------------------------------------------------------------------
 * Values
 * ---------------------------------------------------------------------- */

/* One value, as one coro_local_set made it. */
struct box {
    void      *value;               /* never NULL */
    void     (*destructor)(void *); /* the key's, when it was set */
    coro_key   key;
    size_t     refs;                /* blocks holding it */
};

/* A task's values; shared by the tasks it spawned until one of them, or
 * it, sets one. */
struct coro__locals {
    size_t      refs;               /* tasks holding it */
    unsigned    cap;                /* slots */
    struct box *slot[];             /* by key index; NULL: none */
};

/* Slots are added eight at a time, up to the highest key index set. */
#define SLOTS_STEP 8u
/* Rounds of destructors at a task's end, as PTHREAD_DESTRUCTOR_ITERATIONS:
 * a destructor may set a value, destroyed in the next round. */
#define END_ROUNDS 4

static size_t block_size(unsigned cap)
{
    return sizeof(struct coro__locals) + cap * sizeof(struct box *);
}

static struct box *slot_of(const struct coro__locals *b, unsigned i)
{
    return b && i < b->cap ? b->slot[i] : NULL;
}

/* Lets go of one hold on x; at the last, frees it and, with destroy,
 * runs its destructor, unless its key was deleted meanwhile. The box is
 * freed first: a destructor that never returns (it waits, and coro_run
 * abandons its task) leaks nothing of coro's. */
static void box_put(struct box *x, int destroy)
{
    if (--x->refs)
        return;
    void *value = x->value;
    void (*destructor)(void *) = x->destructor;
    coro_key key = x->key;
    coro__free(x, sizeof *x);
    if (destroy && destructor && key_live(key))
        destructor(value);
}

/* Frees b, whose holders are gone, with the boxes only it holds, without
 * running destructors. */
static void block_drop(struct coro__locals *b)
{
    for (unsigned i = 0; i < b->cap; i++)
        if (b->slot[i])
            box_put(b->slot[i], 0);
    coro__free(b, block_size(b->cap));
}

/* t's block, made t's alone and at least need slots long: a shared block
 * is copied, one too short grown. NULL if out of memory (nothing
 * changed). */
static struct coro__locals *own_block(struct coro_task *t, unsigned need)
{
    struct coro__locals *b = t->locals;
    if (b && b->refs == 1 && b->cap >= need)
        return b;
    if (b && b->cap > need)
        need = b->cap;
    unsigned cap = (need + SLOTS_STEP - 1) / SLOTS_STEP * SLOTS_STEP;
    if (cap > CORO_KEYS_MAX)
        cap = CORO_KEYS_MAX;
    if (b && b->refs == 1) {
        struct coro__locals *g = coro__realloc(b, block_size(b->cap),
                                               block_size(cap));
        if (!g)
            return NULL;
        memset(&g->slot[g->cap], 0, (cap - g->cap) * sizeof *g->slot);
        g->cap = cap;
        return t->locals = g;
    }
    struct coro__locals *c = coro__calloc(1, block_size(cap));
    if (!c)
        return NULL;
    c->refs = 1;
    c->cap = cap;
    if (b) {
        for (unsigned i = 0; i < b->cap; i++)
            if ((c->slot[i] = b->slot[i]) != NULL)
                c->slot[i]->refs++;
        b->refs--;
    }
    return t->locals = c;
}

void *coro_local_get(coro_key key)
{
    struct coro_task *t = coro__current();
    if (!t || !key_live(key))
        return NULL;
    struct box *x = slot_of(t->locals, key_index(key));
    return x && x->key == key ? x->value : NULL;
}

int coro_local_set(coro_key key, void *value)
{
    struct coro_task *t = coro__current();
    if (!t)
        return EPERM;
    void (*destructor)(void *);
    int err = key_destructor(key, &destructor);
    if (err)
        return err;
    unsigned i = key_index(key);
    struct box *old = slot_of(t->locals, i);
    int holds = old && old->key == key;
    if (holds ? old->value == value : !value)
        return 0; /* nothing would change */
    struct box *x = NULL;
    if (value) {
        x = coro__alloc(sizeof *x);
        if (!x)
            return ENOMEM;
        *x = (struct box){ value, destructor, key, 1 };
    }
    struct coro__locals *b = own_block(t, i + 1);
    if (!b) {
        coro__free(x, sizeof *x);
        return ENOMEM;
    }
    old = b->slot[i];
    b->slot[i] = x;
    if (old)
        box_put(old, 1);
    return 0;
}

void coro__local_share(struct coro_task *t, struct coro_task *spawner)
{
    t->locals = spawner->locals;
    t->locals->refs++;
}

/* Destroys t's values one slot at a time, in place: the block stays t's,
 * so what a destructor does to it (set, spawn) is seen, and a task
 * abandoned in a destructor still holds the rest for task_free. A block
 * that a destructor's spawn shared goes on with that task. */
void coro__local_release(struct coro_task *t)
{
    for (int round = 0; round < END_ROUNDS; round++) {
        int ran = 0;
        for (unsigned i = 0;; i++) {
            struct coro__locals *b = t->locals;
            if (!b)
                return;
            if (b->refs > 1) {
                b->refs--;
                t->locals = NULL;
                return;
            }
            if (i >= b->cap)
                break;
            struct box *x = b->slot[i];
            if (x) {
                b->slot[i] = NULL;
                ran = 1;
                box_put(x, 1);
            }
        }
        if (!ran)
            break;
    }
    struct coro__locals *b = t->locals;
    t->locals = NULL;
    if (b)
        block_drop(b);
}
