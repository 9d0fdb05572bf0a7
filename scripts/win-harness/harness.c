/*
 * Smoke test of a zerobus_bun.dll through its C ABI (rust/ffi/include/zerobus_bun.h), for Windows builds
 * that cannot be tested with Bun here (run under wine by scripts/verify-prebuilds.ts).
 *
 *   harness.exe <path\to\zerobus_bun.dll> <dataDir> [records] [name,name,...]
 *
 * Loads the DLL with LoadLibrary, resolves the functions it calls with GetProcAddress (plus every name
 * of the optional comma-separated list: verify-prebuilds.ts passes all functions of the header), starts the
 * embedded local Zerobus server, opens a JSON stream to it, ingests N records (copied: NULL release),
 * waits for the last offset, closes the stream (polls progress until state 4 = closed), stops the server
 * and checks that <dataDir>\a.b.c.jsonl holds exactly N lines. Prints "HARNESS PASS ..." and exits 0 on
 * success, "HARNESS FAIL ..." and exit 1 otherwise.
 */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zerobus_bun.h" /* rust/ffi/include: compile with -I rust/ffi/include */

#define FAIL(...)                          \
  do {                                     \
    printf("HARNESS FAIL: " __VA_ARGS__);  \
    printf("\n");                          \
    fflush(stdout);                        \
    exit(1);                               \
  } while (0)

/* The functions the harness calls (and some of the rest of the ABI): name + pointer slot. */
static struct {
  const char *name;
  FARPROC fn;
} syms[] = {
#define S(n) {#n, NULL}
    S(zerobus_last_error_code),        S(zerobus_last_error_retryable),      S(zerobus_last_error_message),
    S(zerobus_version),                S(zerobus_sink_release_fn),           S(zerobus_sink_drain),
    S(zerobus_sink_new),               S(zerobus_sink_free),                 S(zerobus_waker_notify_fn),
    S(zerobus_sdk_new),                S(zerobus_sdk_free),                  S(zerobus_stream_open),
    S(zerobus_stream_progress),        S(zerobus_stream_error_message),      S(zerobus_stream_id),
    S(zerobus_ingest_proto_bytes),     S(zerobus_ingest_json_bytes),         S(zerobus_ingest_proto_bytes_batch),
    S(zerobus_ingest_json_bytes_batch), S(zerobus_ingest_proto_bytes_packed), S(zerobus_ingest_json_bytes_packed),
    S(zerobus_stream_wait_for_offset), S(zerobus_stream_close),              S(zerobus_stream_free),
#undef S
};

static FARPROC sym(const char *name) {
  for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++)
    if (strcmp(syms[i].name, name) == 0) return syms[i].fn;
  FAIL("symbol %s not in the harness table", name);
  return NULL;
}

/* Typed accessors (the prototypes come from the header). */
#define F(name) ((__typeof__(&name))sym(#name))

static void last_error(char *buf, size_t cap) {
  size_t n = F(zerobus_last_error_message)((uint8_t *)buf, cap - 1);
  buf[n < cap - 1 ? n : cap - 1] = 0;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    printf("usage: harness.exe <zerobus_bun.dll> <local server url> <its dataDir> [records] [name,name,...]\n");
    return 2;
  }
  const char *dll = argv[1];
  const char *url = argv[2];
  const char *data_dir = argv[3];
  long records = argc > 4 ? atol(argv[4]) : 1000;
  char err[1024];
  DWORD t0 = GetTickCount();

  HMODULE h = LoadLibraryA(dll);
  if (!h) FAIL("LoadLibrary(%s) failed: error %lu", dll, (unsigned long)GetLastError());
  for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
    syms[i].fn = GetProcAddress(h, syms[i].name);
    if (!syms[i].fn) FAIL("GetProcAddress(%s) failed", syms[i].name);
  }
  unsigned listed = 0;
  if (argc > 5) {
    char names[8192];
    snprintf(names, sizeof names, "%s", argv[5]);
    for (char *n = strtok(names, ","); n; n = strtok(NULL, ",")) {
      if (!GetProcAddress(h, n)) FAIL("GetProcAddress(%s) failed (listed on the command line)", n);
      listed++;
    }
  }
  printf("loaded %s: %u harness functions and %u listed names resolved, version %s\n", dll,
         (unsigned)(sizeof syms / sizeof syms[0]), listed, (const char *)F(zerobus_version)());

  printf("local server on %s, data in %s\n", url, data_dir);

  char sdk_cfg[512];
  snprintf(sdk_cfg, sizeof sdk_cfg, "{\"endpoint\":\"%s\"}", url);
  ZerobusSdk *sdk = F(zerobus_sdk_new)((const uint8_t *)sdk_cfg, strlen(sdk_cfg));
  if (!sdk) {
    last_error(err, sizeof err);
    FAIL("zerobus_sdk_new: %s", err);
  }
  const char *opts = "{\"table\":\"a.b.c\",\"recordType\":\"json\",\"headers\":{\"authorization\":\"Bearer t\"}}";
  ZerobusSink *sink = F(zerobus_sink_new)();
  ZerobusStream *s = F(zerobus_stream_open)(sdk, (const uint8_t *)opts, strlen(opts), NULL, 0, sink, NULL, 0);
  if (!s) {
    last_error(err, sizeof err);
    FAIL("zerobus_stream_open: %s", err);
  }

  int64_t last = -1;
  for (long i = 0; i < records; i++) {
    char rec[128];
    int n = snprintf(rec, sizeof rec, "{\"id\":%ld,\"device\":\"sensor-%ld\",\"temp\":%ld.5}", i, i % 7, i % 40);
    int64_t o;
    for (;;) {
      o = F(zerobus_ingest_json_bytes)(s, (const uint8_t *)rec, (uintptr_t)n, NULL, NULL);
      if (o != -ZEROBUS_ERR_BACKPRESSURE) break;
      Sleep(1);
    }
    if (o < 0) {
      last_error(err, sizeof err);
      FAIL("zerobus_ingest_json_bytes(record %ld) = %lld: %s", i, (long long)o, err);
    }
    if (o != i) FAIL("record %ld got offset %lld", i, (long long)o);
    last = o;
  }
  int32_t w = F(zerobus_stream_wait_for_offset)(s, last, 60000);
  if (w != 0) {
    char msg[1024];
    size_t ml = F(zerobus_stream_error_message)(s, (uint8_t *)msg, sizeof msg - 1);
    msg[ml < sizeof msg - 1 ? ml : sizeof msg - 1] = 0;
    FAIL("zerobus_stream_wait_for_offset(%lld) = %d: %s", (long long)last, w, msg);
  }
  char sid[256];
  size_t sl = F(zerobus_stream_id)(s, (uint8_t *)sid, sizeof sid - 1);
  sid[sl < sizeof sid - 1 ? sl : sizeof sid - 1] = 0;

  F(zerobus_stream_close)(s);
  ZerobusProgress pr;
  memset(&pr, 0, sizeof pr);
  for (int i = 0; i < 6000; i++) {
    F(zerobus_stream_progress)(s, &pr);
    if (pr.state >= 4) break;
    Sleep(10);
  }
  if (pr.state != 4) FAIL("stream did not close: state %d, error %d", pr.state, pr.error_code);
  printf("ingested %ld records, acked %lld, stream %s closed (streams opened %llu)\n", records, (long long)pr.acked,
         sid, (unsigned long long)pr.streams_opened);
  if (pr.acked != last) FAIL("acked %lld, expected %lld", (long long)pr.acked, (long long)last);
  F(zerobus_stream_free)(s);
  F(zerobus_sink_free)(sink);
  F(zerobus_sdk_free)(sdk);

  char path[1200];
  snprintf(path, sizeof path, "%s\\a.b.c.jsonl", data_dir);
  FILE *f = fopen(path, "rb");
  if (!f) FAIL("cannot open %s", path);
  long lines = 0;
  int c, prev = '\n';
  while ((c = fgetc(f)) != EOF) {
    if (c == '\n') lines++;
    prev = c;
  }
  fclose(f);
  if (prev != '\n') lines++;
  if (lines != records) FAIL("%s has %ld lines, expected %ld", path, lines, records);
  printf("HARNESS PASS: %s has %ld lines (%lu ms)\n", path, lines, (unsigned long)(GetTickCount() - t0));
  fflush(stdout);
  FreeLibrary(h);
  return 0;
}
