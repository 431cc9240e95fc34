/* arena.h — region allocation, the memory policy of all of sbpc.
 *
 * Memory policy (stated once, here): every long-lived object of a compilation
 * (AST nodes, IR tensors and ops, names, plans) is carved from an arena owned by
 * the job that made it, and the whole arena is freed at once when that job ends.
 * Nothing allocated from an arena is freed on its own. Growable arrays that
 * must move (ir graph tables) use plain realloc and are freed by their owner's
 * destroy function. Runtime buffers (tensors' data) live in the executor's
 * per-device arenas, described in runtime/rt.h. Allocation failure is fatal
 * (arena_alloc never returns NULL): sbpc refuses oversized requests before
 * allocating, so running out of memory is not an input error. */
#ifndef SBPC_ARENA_H
#define SBPC_ARENA_H
#include <stddef.h>
#include <stdarg.h>

typedef struct arena arena;

/* arena_new: a new empty arena. */
arena *arena_new(void);
/* arena_free: release the arena and everything allocated from it; NULL is ok. */
void arena_free(arena *a);
/* arena_alloc: n zeroed bytes aligned for any type; never NULL. */
void *arena_alloc(arena *a, size_t n);
/* arena_strdup / arena_strndup: copy a string into the arena. */
char *arena_strdup(arena *a, const char *s);
char *arena_strndup(arena *a, const char *s, size_t n);
/* arena_printf: a formatted string in the arena. */
char *arena_printf(arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* arena_used: bytes handed out so far (for tests and statistics). */
size_t arena_used(const arena *a);

/* xmalloc / xrealloc / xcalloc: malloc that dies on failure (tables that grow). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);

#define ARENA_NEW(a, T) ((T *)arena_alloc((a), sizeof(T)))
#define ARENA_ARRAY(a, T, n) ((T *)arena_alloc((a), sizeof(T) * (size_t)(n)))
#endif
