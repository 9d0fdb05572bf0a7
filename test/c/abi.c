/* The C ABI's edges, called from C: NULL handles and output pointers, empty and NULL arrays,
 * 64-bit pointer arrays with 32-bit lengths, and the exactly-once release on every path.
 * usage: abi <local server url>   (prints "ok N checks" and exits 0, or names the failed check) */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "zerobus_bun.h"

static int checks = 0;
#define CHECK(cond, what)                                                       \
  do {                                                                          \
    checks++;                                                                   \
    if (!(cond)) {                                                              \
      char m[512] = {0};                                                        \
      zerobus_last_error_message((uint8_t *)m, sizeof m - 1);                   \
      fprintf(stderr, "FAILED: %s (line %d; last error: %s)\n", what, __LINE__, m); \
      exit(1);                                                                  \
    }                                                                           \
  } while (0)

static int released = 0;
static void on_release(void *ctx) {
  (void)ctx;
  released++;
}

static ZerobusProgress progress(const ZerobusStream *s) {
  ZerobusProgress p;
  memset(&p, 0, sizeof p);
  zerobus_stream_progress(s, &p);
  return p;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  char cfg[1024];

  /* Handles and output pointers that are NULL are refused, never read or written. */
  CHECK(zerobus_sdk_new(NULL, 0) == NULL, "sdk from NULL config");
  CHECK(zerobus_last_error_code() == ZEROBUS_ERR_INVALID_ARGUMENT, "NULL config is INVALID_ARGUMENT");
  CHECK(zerobus_last_error_message(NULL, 0) > 0, "message length with NULL buffer");
  CHECK(zerobus_stream_open(NULL, (const uint8_t *)"{}", 2, NULL, 0, NULL, NULL, 0) == NULL, "open with NULL sdk");
  CHECK(zerobus_stream_progress(NULL, NULL) < 0, "progress of NULL stream");
  zerobus_ipc_passes(NULL);
  uint64_t tokens[4];
  CHECK(zerobus_sink_drain(NULL, tokens, 4) == 0, "drain NULL sink");
  ZerobusSink *sink = zerobus_sink_new();
  zerobus_sink_push(sink, 42);
  CHECK(zerobus_sink_drain(sink, NULL, 4) == 0, "drain into NULL");
  CHECK(zerobus_sink_drain(sink, tokens, 4) == 1 && tokens[0] == 42, "drain one token");
  CHECK(zerobus_ingest_json_bytes(NULL, (const uint8_t *)"{}", 2, on_release, NULL) == -ZEROBUS_ERR_INVALID_ARGUMENT, "ingest into NULL stream");
  CHECK(released == 1, "released once even without a stream");

  /* argv[1]: the URL of a local server (the zerobus-local executable, started by the test). */
  snprintf(cfg, sizeof cfg, "{\"endpoint\": \"%s\"}", argv[1]);
  ZerobusSdk *sdk = zerobus_sdk_new((const uint8_t *)cfg, strlen(cfg));
  CHECK(sdk != NULL, "sdk");

  const char *opts = "{\"table\": \"c.abi.t\", \"recordType\": \"json\", \"headers\": {\"authorization\": \"Bearer c\"}}";
  ZerobusStream *s = zerobus_stream_open(sdk, (const uint8_t *)opts, strlen(opts), NULL, 0, sink, NULL, 0);
  CHECK(s != NULL, "open");
  CHECK(zerobus_stream_progress(s, NULL) == -ZEROBUS_ERR_INVALID_ARGUMENT, "progress into NULL");
  while (progress(s).state == 0) usleep(1000);
  CHECK(progress(s).state == 1, "stream open");

  /* Bad arguments: an error, the stream stays usable, and release runs exactly once. */
  released = 0;
  CHECK(zerobus_ingest_json_bytes_batch(s, NULL, NULL, 0, on_release, NULL) == -ZEROBUS_ERR_INVALID_ARGUMENT, "batch of 0 with NULL arrays");
  CHECK(zerobus_ingest_json_bytes_batch(s, NULL, NULL, 2, on_release, NULL) == -ZEROBUS_ERR_INVALID_ARGUMENT, "batch of 2 with NULL arrays");
  CHECK(zerobus_ingest_json_bytes_packed(s, (const uint8_t *)"{}", 2, NULL, 1, on_release, NULL) == -ZEROBUS_ERR_INVALID_ARGUMENT, "packed with NULL lens");
  CHECK(zerobus_ingest_json_bytes_packed(s, NULL, 0, NULL, 0, on_release, NULL) == -ZEROBUS_ERR_INVALID_ARGUMENT, "packed of 0");
  CHECK(zerobus_ingest_json_bytes(s, NULL, 5, on_release, NULL) == -ZEROBUS_ERR_INVALID_ARGUMENT, "NULL data with a length");
  uint32_t bad_lens[2] = {2, 2};
  CHECK(zerobus_ingest_json_bytes_packed(s, (const uint8_t *)"{}{}", 3, bad_lens, 2, on_release, NULL) == -ZEROBUS_ERR_INVALID_ARGUMENT, "packed lengths that do not add up");
  CHECK(released == 6, "every refused call released exactly once");

  /* The sink marker needs a sink: this stream has one, so the token comes back through it. */
  char big[2048];
  memset(big, ' ', sizeof big);
  big[0] = '{';
  big[sizeof big - 1] = '}';
  int64_t o0 = zerobus_ingest_json_bytes(s, (const uint8_t *)big, sizeof big, (ZerobusReleaseFn)zerobus_sink_release_fn(), (void *)7);
  CHECK(o0 == 0, "ingest with the sink marker");

  /* A batch: 64-bit pointers, 32-bit lengths; one release for the batch. */
  const char *recs[3] = {"{\"n\":1}", "{\"n\":2}", "{\"n\":3}"};
  const uint8_t *ptrs[3];
  uint32_t lens[3];
  for (int i = 0; i < 3; i++) {
    ptrs[i] = (const uint8_t *)recs[i];
    lens[i] = (uint32_t)strlen(recs[i]);
  }
  released = 0;
  int64_t o1 = zerobus_ingest_json_bytes_batch(s, ptrs, lens, 3, on_release, NULL);
  CHECK(o1 == 1, "batch offset");
  uint32_t plens[2] = {7, 7};
  int64_t o2 = zerobus_ingest_json_bytes_packed(s, (const uint8_t *)"{\"n\":4}{\"n\":5}", 14, plens, 2, NULL, NULL);
  CHECK(o2 == 2, "packed offset");
  /* Records each as a request of its own, copied during the call; all or none. */
  uint32_t elens[3] = {7, 3, 7};
  CHECK(zerobus_ingest_json_bytes_each(s, (const uint8_t *)"{\"n\":6}[1]{\"n\":7}", 17, elens, 3) == -ZEROBUS_ERR_INVALID_ARGUMENT, "each: one record refused, none queued");
  CHECK(zerobus_ingest_json_bytes_each(s, (const uint8_t *)"{}", 2, NULL, 1) == -ZEROBUS_ERR_INVALID_ARGUMENT, "each with NULL lens");
  CHECK(zerobus_ingest_json_bytes_each(s, (const uint8_t *)"{}{}", 3, bad_lens, 2) == -ZEROBUS_ERR_INVALID_ARGUMENT, "each: lengths that do not add up");
  uint32_t elens2[2] = {7, 7};
  o2 = zerobus_ingest_json_bytes_each(s, (const uint8_t *)"{\"n\":6}{\"n\":7}", 14, elens2, 2);
  CHECK(o2 == 4, "each: consecutive offsets, the last returned");
  CHECK(zerobus_stream_wait_for_offset(s, 99, 1000) == -ZEROBUS_ERR_INVALID_ARGUMENT, "waiting for an offset never handed out");
  CHECK(zerobus_stream_wait_for_offset(s, o2, 10000) == 0, "acknowledged");
  for (int i = 0; i < 100 && released == 0; i++) usleep(1000);
  CHECK(released == 1, "batch released once after the ack");
  size_t got = 0;
  for (int i = 0; i < 1000 && got == 0; i++, usleep(1000)) got = zerobus_sink_drain(sink, tokens, 4);
  CHECK(got == 1 && tokens[0] == 7, "the sink got token 7 back");

  /* A stream without a sink refuses the marker (and the token is simply not delivered). */
  ZerobusStream *nosink = zerobus_stream_open(sdk, (const uint8_t *)opts, strlen(opts), NULL, 0, NULL, NULL, 0);
  CHECK(nosink != NULL, "open without sink");
  CHECK(zerobus_ingest_json_bytes(nosink, (const uint8_t *)big, sizeof big, (ZerobusReleaseFn)zerobus_sink_release_fn(), (void *)8) == -ZEROBUS_ERR_INVALID_ARGUMENT, "marker without a sink");
  zerobus_stream_free(nosink);

  zerobus_stream_close(s);
  while (progress(s).state != 4) {
    CHECK(progress(s).state != 5, "close failed");
    usleep(1000);
  }
  zerobus_stream_free(s);
  zerobus_sdk_free(sdk);
  zerobus_sink_free(sink);
  printf("ok %d checks\n", checks);
  return 0;
}
