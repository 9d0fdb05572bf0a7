// Allocation counter for the benchmarks (Linux, glibc), loaded with LD_PRELOAD into either SDK's
// process. Counts every malloc-family call and the bytes it asks for; realloc counts its full new
// size, so the byte count is an upper bound. The counters live in a shared mapping of the file
// named by ZB_ALLOC_FILE, so a driver reads them by reading that file: no FFI needed, which lets
// Node (the official addon) and Bun use the same probe.
//
// Layout of ZB_ALLOC_FILE: little-endian u64 [calls, bytes].
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
