// Wakes this realm's streams when native progress changes, without running JavaScript on a
// native thread: Rust writes a byte to a loopback TCP connection that this event loop listens on
// (`zerobus_waker_*`), and the socket's data handler polls the active streams here, on the JS
// thread. One waker per realm (main thread, each Worker).
//
// Active streams are those with work outstanding (records not yet acknowledged, or promises
// waiting). While any is active a ref'd timer keeps the process alive — so a script that ends
// right after `submit()` still waits for its acknowledgements — and polls as a fallback.
import type { Pointer } from "bun:ffi";
import { lib } from "./native.js";
import { drainReleased, heldCount } from "./memory.js";

export interface Pollable {
  poll(): void;
}

const active = new Set<Pollable>();
/** Polled on every wake-up even while idle (streams whose native side may ask for headers); weakly held. */
const watched = new Set<WeakRef<Pollable>>();
let timer: ReturnType<typeof setTimeout> | undefined;
/** undefined: not set up yet; null: unavailable (the timer polls often instead). */
let waker: Pointer | null | undefined;
let connected = false;
/** Forgets buffers released after their streams went idle (an unref'd timer: it never keeps the process alive). */
let drainTimer: ReturnType<typeof setTimeout> | undefined;
const notifyFn = lib.zerobus_waker_notify_fn() as Pointer;

/** The `notify` and `userdata` a stream opened in this realm should use. */
export function notifyTarget(): [Pointer | null, number] {
  setUp();
  return waker ? [notifyFn, Number(waker)] : [null, 0];
}

/** Whether progress reaches this realm through the waker socket (else by polling). */
export function wakerConnected(): boolean {
  return connected;
}

function setUp(): void {
  if (waker !== undefined) return;
  waker = null;
  if (process.env["ZEROBUS_BUN_WAKE"] === "poll") return;
  try {
    let expected = -1;
    const listener = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open(sock) {
          // Only our own connection (matched by port) is kept; then stop accepting.
          if (sock.remotePort !== expected) {
            sock.end();
            return;
          }
          sock.unref();
          connected = true;
          listener.stop();
        },
        data() {
          pollAll();
        },
        close() {
          connected = false;
        },
        error() {
          connected = false;
        },
      },
    });
    listener.unref();
    const w = lib.zerobus_waker_new(listener.port) as Pointer | null;
    if (!w) {
      listener.stop(true);
      return;
    }
    expected = lib.zerobus_waker_local_port(w);
    waker = w;
  } catch {
    waker = null;
  }
}

function pollAll(): void {
  if (waker) lib.zerobus_waker_arm(waker);
  drainReleased();
  for (const s of active) s.poll();
  for (const r of watched) {
    const s = r.deref();
    if (!s) watched.delete(r);
    else if (!active.has(s)) s.poll();
  }
  if (active.size === 0 && heldCount() > 0 && !drainTimer) {
    // Records of a failed, aborted or freed stream come back a little later (from the runtime
    // threads that still held them): keep forgetting them while the realm is otherwise idle.
    drainTimer = setTimeout(() => {
      drainTimer = undefined;
      pollAll();
    }, 100);
    drainTimer.unref();
  }
}

/** Polls `s` on every wake-up, also while idle, without keeping the process alive; returns the undo. */
export function watch(s: Pollable): () => void {
  setUp();
  const r = new WeakRef(s);
  watched.add(r);
  schedule();
  return () => {
    watched.delete(r);
  };
}

/** Keeps `s` polled (and the process alive) until `deactivate`. */
export function activate(s: Pollable): void {
  active.add(s);
  if (active.size === 1 && timer) {
    clearTimeout(timer); // an unref'd watch timer: replaced by the ref'd one
    timer = undefined;
  }
  schedule();
}

export function deactivate(s: Pollable): void {
  active.delete(s);
  if (active.size === 0) {
    if (timer) clearTimeout(timer);
    timer = undefined;
    pollAll();
    schedule();
  }
}

/** Every stream with outstanding work in this realm. */
export function activeStreams(): Iterable<Pollable> {
  return active;
}

// With the socket the timer is only a fallback; without it, it is how progress is seen.
function delay(): number {
  return connected ? 50 : 1;
}

function tick(): void {
  timer = undefined;
  pollAll();
  schedule();
}

/** The fallback poll: while streams are active (keeping the process alive), or, without the
 *  waker socket, while watched streams exist (unref'd: they must not keep the process alive). */
function schedule(): void {
  if (timer) return;
  if (active.size > 0) timer = setTimeout(tick, delay());
  else if (watched.size > 0 && !connected) {
    timer = setTimeout(tick, 50);
    timer.unref();
  }
}
