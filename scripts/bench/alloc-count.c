// Allocation and copy counter for the benchmarks (Linux, glibc), loaded with LD_PRELOAD into either
// SDK's process. Counts every malloc-family call and the bytes it asks for (realloc counts its
// full new size, so the byte count is an upper bound), and every memcpy/memmove of at least
// ZB_COPY_MIN (4096) bytes and the bytes it copies: record-sized copies in user space, made
// through libc by the SDK's native code or the JS runtime (copies the compiler inlines are small;
// the kernel's copies into sockets are not user space). The counters live in a shared mapping of the file
// named by ZB_ALLOC_FILE, so a driver reads them by reading that file: no FFI needed, which lets
// Node (the official addon) and Bun use the same probe.
//
// Layout of ZB_ALLOC_FILE: little-endian u64 [calls, bytes, copies, copied bytes].
// Not counted: the JS engines' own heaps (V8, JavaScriptCore), which don't go through malloc.
//
// build: cc -O2 -shared -fPIC -o alloc-count.so alloc-count.c
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include <dlfcn.h>

#define ZB_COPY_MIN 4096

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static uint64_t fallback[2];
static uint64_t *counters = fallback;

__attribute__((constructor)) static void zb_alloc_init(void) {
  const char *path = getenv("ZB_ALLOC_FILE");
  if (!path) return;
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return;
  if (ftruncate(fd, 4096) == 0) {
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p != MAP_FAILED) counters = p;
  }
  close(fd);
}

static inline void count(size_t n) {
  __atomic_fetch_add(&counters[0], 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&counters[1], (uint64_t)n, __ATOMIC_RELAXED);
}

void *malloc(size_t n) {
  count(n);
  return __libc_malloc(n);
}

void *calloc(size_t a, size_t b) {
  count(a * b);
  return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n) {
  count(n);
  return __libc_realloc(p, n);
}

void *memalign(size_t align, size_t n) {
  count(n);
  return __libc_memalign(align, n);
}

void *aligned_alloc(size_t align, size_t n) {
  count(n);
  return __libc_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n) {
  if (align < sizeof(void *) || (align & (align - 1)) != 0) return EINVAL;
  count(n);
  void *p = __libc_memalign(align, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}

static inline void count_copy(size_t n) {
  if (n < ZB_COPY_MIN) return;
  __atomic_fetch_add(&counters[2], 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&counters[3], (uint64_t)n, __ATOMIC_RELAXED);
}

typedef void *(*copy_fn)(void *, const void *, size_t);
static copy_fn real_memcpy, real_memmove;
static int resolving;

// Byte loop for the moment dlsym itself copies (kept a loop: not turned back into memmove).
__attribute__((optimize("no-tree-loop-distribute-patterns"))) static void *slow_move(void *d, const void *s, size_t n) {
  volatile unsigned char *dd = d;
  const unsigned char *ss = s;
  if (dd < ss)
    for (size_t i = 0; i < n; i++) dd[i] = ss[i];
  else
    for (size_t i = n; i > 0; i--) dd[i - 1] = ss[i - 1];
  return d;
}

static copy_fn resolve(copy_fn *slot, const char *name) {
  if (!*slot && !__atomic_load_n(&resolving, __ATOMIC_RELAXED)) {
    __atomic_store_n(&resolving, 1, __ATOMIC_RELAXED);
    *slot = (copy_fn)dlsym(RTLD_NEXT, name);
    __atomic_store_n(&resolving, 0, __ATOMIC_RELAXED);
  }
  return *slot ? *slot : slow_move;
}

void *memcpy(void *d, const void *s, size_t n) {
  count_copy(n);
  return resolve(&real_memcpy, "memcpy")(d, s, n);
}

void *memmove(void *d, const void *s, size_t n) {
  count_copy(n);
  return resolve(&real_memmove, "memmove")(d, s, n);
}

void *__memcpy_chk(void *d, const void *s, size_t n, size_t dlen) {
  (void)dlen;
  count_copy(n);
  return resolve(&real_memcpy, "memcpy")(d, s, n);
}

void *__memmove_chk(void *d, const void *s, size_t n, size_t dlen) {
  (void)dlen;
  count_copy(n);
  return resolve(&real_memmove, "memmove")(d, s, n);
}
