// A TCP relay between the SDK and a server that injects network faults, per direction: a black
// hole (bytes vanish, the sender's TCP sees them taken), a stall (nothing is read, so the sender's
// buffers fill and its window closes), a bandwidth limit, added latency, a half-close (FIN) and
// a reset (RST). It runs in a child process of its own, so a test whose JavaScript thread blocks
// (submit, flushSync) does not stop it; `startRelay` starts it and drives it over IPC.
//
// "up" is client -> server, "down" is server -> client. A fault applies to the connections open
// when it is set (`scope: "current"`, the default: a NAT that drops one flow while new ones work)
// or to those and every later one (`scope: "all"`).

export interface DirectionFault {
  /**
   * pass (default): forward; blackhole: read and discard (for good, once a byte was dropped);
   * stall: stop reading; close: send FIN onwards.
   */
  mode?: "pass" | "blackhole" | "stall" | "close";
  /** Forward at most this many bytes a second (0 or absent: unlimited). */
  bytesPerSecond?: number;
  /** Hold every chunk this long before forwarding it. */
  latencyMs?: number;
}

export interface RelayFault {
  up?: DirectionFault;
  down?: DirectionFault;
  scope?: "current" | "all";
}

export interface RelayStats {
  /** Connections accepted so far, and open now. */
  accepted: number;
  open: number;
  /** Bytes forwarded (not dropped) in each direction. */
  up: number;
  down: number;
  /** Bytes a black hole swallowed. */
  dropped: number;
}

export interface Relay {
  /** `http://127.0.0.1:<port>`: the endpoint to give the SDK. */
  url: string;
  port: number;
  set(fault: RelayFault): Promise<void>;
  /** Sends RST on both sides of every open connection. */
  reset(): Promise<void>;
  stats(): Promise<RelayStats>;
  close(): void;
}

/** Starts a relay to `target` (`http://host:port`) in a child process. */
export async function startRelay(target: string): Promise<Relay> {
  const u = new URL(target);
  let next = 1;
  const waiting = new Map<number, (v: unknown) => void>();
  let ready: (port: number) => void;
  const listening = new Promise<number>((r) => (ready = r));
  const child = Bun.spawn([process.execPath, import.meta.path, u.hostname, u.port], {
    stdio: ["ignore", "ignore", "inherit"],
    ipc(message: { id?: number; port?: number; value?: unknown }) {
      if (message.port !== undefined) ready(message.port);
      else if (message.id !== undefined) {
        waiting.get(message.id)?.(message.value);
        waiting.delete(message.id);
      }
    },
  });
  child.unref();
  const port = await listening;
  const call = (op: string, arg?: unknown) =>
    new Promise<any>((resolve) => {
      const id = next++;
      waiting.set(id, resolve);
      child.send({ id, op, arg });
    });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    set: (fault) => call("set", fault),
    reset: () => call("reset"),
    stats: () => call("stats"),
    close: () => child.kill(9),
  };
}

// ---- the child process ------------------------------------------------------------------------

/** Bytes queued in one direction before its source is paused (resumed below half of it). */
const HIGH = 256 * 1024;

type Sock = import("bun").Socket<{ conn: Conn; side: "client" | "server" }>;

/** One direction of a connection: what `src` sends, forwarded to `dst` under its fault. */
class Pipe {
  fault: DirectionFault = {};
  dst: Sock | undefined;
  #queue: { chunk: Uint8Array; at: number }[] = [];
  #queued = 0;
  #tokens = 0;
  #refill = performance.now();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #paused = false;
  #ended = false;
  #holed = false;

  constructor(
    public src: Sock | undefined,
    readonly counters: { forwarded: number; dropped: number },
  ) {}

  apply(f: DirectionFault): void {
    this.fault = { ...f };
    this.#flow();
    if (f.mode === "close") this.dst?.shutdown();
    this.pump();
  }

  take(chunk: Uint8Array): void {
    const mode = this.fault.mode ?? "pass";
    if (mode === "blackhole" || mode === "close" || this.#holed) {
      // Bytes dropped from the middle of a TCP stream never come back: this direction stays a
      // black hole for good (forwarding later bytes would splice the stream, which no real
      // network does).
      this.#holed ||= chunk.length > 0;
      this.counters.dropped += chunk.length;
      return;
    }
    this.#queue.push({ chunk: new Uint8Array(chunk), at: performance.now() + (this.fault.latencyMs ?? 0) });
    this.#queued += chunk.length;
    this.#flow();
    this.pump();
  }

  /** The source ended (FIN): so does the destination, once everything queued is forwarded. */
  end(): void {
    this.#ended = true;
    this.pump();
  }

  /** Reads while there is room and the fault lets it. */
  #flow(): void {
    const stop = this.fault.mode === "stall" || this.#queued >= HIGH || (this.#paused && this.#queued >= HIGH / 2);
    if (stop !== this.#paused && this.src) {
      this.#paused = stop;
      if (stop) this.src.pause();
      else this.src.resume();
    }
  }

  pump(): void {
    const dst = this.dst;
    if (this.#timer || !dst || dst.readyState <= 0) return;
    if ((this.fault.mode ?? "pass") === "stall") return;
    const rate = this.fault.bytesPerSecond ?? 0;
    while (this.#queue.length > 0) {
      const now = performance.now();
      const head = this.#queue[0]!;
      if (head.at > now) return this.#later(head.at - now);
      let n = head.chunk.length;
      if (rate > 0) {
        this.#tokens = Math.min(rate / 10, this.#tokens + ((now - this.#refill) * rate) / 1000);
        this.#refill = now;
        if (this.#tokens < 1) return this.#later(Math.max(1, ((1 - this.#tokens) * 1000) / rate));
        n = Math.min(n, Math.floor(this.#tokens));
      }
      const written = dst.write(head.chunk.subarray(0, n));
      if (rate > 0) this.#tokens -= written;
      this.#queued -= written;
      this.counters.forwarded += written;
      if (written === head.chunk.length) this.#queue.shift();
      else head.chunk = head.chunk.subarray(written);
      this.#flow();
      if (written < n) return; // the socket is full: its drain handler pumps again
    }
    if (this.#ended) dst.shutdown();
  }

  #later(ms: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.pump();
    }, ms);
  }
}

/** A relayed connection: the client's socket, the server's, and a pipe each way. */
interface Conn {
  up: Pipe;
  down: Pipe;
  client?: Sock;
  server?: Sock;
}

function child(host: string, port: number): void {
  const counters = { up: { forwarded: 0, dropped: 0 }, down: { forwarded: 0, dropped: 0 } };
  const open = new Set<Conn>();
  let accepted = 0;
  let defaults: { up: DirectionFault; down: DirectionFault } = { up: {}, down: {} };
  // One side closed (FIN: the other gets FIN) or failed (RST: the other gets RST).
  const close = (c: Conn, reset = false) => {
    if (!open.delete(c)) return;
    for (const s of [c.client, c.server]) {
      if (reset) s?.terminate();
      else s?.end();
    }
  };
  // The pipe a socket's bytes go into, and the one that writes to it.
  const from = (s: Sock) => (s.data.side === "client" ? s.data.conn.up : s.data.conn.down);
  const to = (s: Sock) => (s.data.side === "client" ? s.data.conn.down : s.data.conn.up);
  const handlers = {
    data: (s: Sock, d: Uint8Array) => from(s).take(d),
    drain: (s: Sock) => to(s).pump(),
    end: (s: Sock) => from(s).end(),
    close: (s: Sock) => close(s.data.conn),
    error: (s: Sock) => close(s.data.conn, true),
  };
  const server = Bun.listen<{ conn: Conn; side: "client" | "server" }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      ...handlers,
      open(client) {
        accepted++;
        const conn: Conn = { up: new Pipe(client, counters.up), down: new Pipe(undefined, counters.down), client };
        client.data = { conn, side: "client" };
        conn.down.dst = client;
        conn.up.apply(defaults.up);
        conn.down.apply(defaults.down);
        open.add(conn);
        Bun.connect<{ conn: Conn; side: "client" | "server" }>({
          hostname: host,
          port,
          data: { conn, side: "server" },
          socket: {
            ...handlers,
            open(srv) {
              conn.server = srv;
              conn.up.dst = srv;
              conn.down.src = srv;
              conn.down.apply(conn.down.fault);
              conn.up.apply(conn.up.fault); // a half-close set before the server side was there
              conn.up.pump();
              if (!open.has(conn)) srv.end();
            },
            connectError: () => close(conn),
          },
        }).catch(() => close(conn));
      },
    },
  });
  process.send!({ port: server.port });
  process.on("message", (m: { id: number; op: string; arg?: RelayFault }) => {
    let value: unknown;
    if (m.op === "set") {
      const f = m.arg ?? {};
      for (const c of open) {
        if (f.up) c.up.apply(f.up);
        if (f.down) c.down.apply(f.down);
      }
      if (f.scope === "all") defaults = { up: f.up ?? defaults.up, down: f.down ?? defaults.down };
    } else if (m.op === "reset") {
      for (const c of [...open]) {
        open.delete(c);
        c.client?.terminate();
        c.server?.terminate();
      }
    } else if (m.op === "stats") {
      value = {
        accepted,
        open: open.size,
        up: counters.up.forwarded,
        down: counters.down.forwarded,
        dropped: counters.up.dropped + counters.down.dropped,
      } satisfies RelayStats;
    }
    process.send!({ id: m.id, value });
  });
  // The parent is gone: so is the relay.
  process.on("disconnect", () => process.exit(0));
}

if (import.meta.main) child(process.argv[2]!, Number(process.argv[3]));
