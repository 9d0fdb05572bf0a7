// Row counts of the record batches in Arrow IPC stream bytes, read from each message's
// flatbuffer header (no body is read or decoded). The official SDK refuses a batch without rows.
import { InvalidArgumentError } from "../errors.js";

const RECORD_BATCH = 3; // MessageHeader.RecordBatch

/** The row count of each record batch message in `ipc`, in order. */
export function ipcRowCounts(ipc: Uint8Array): bigint[] {
  const view = new DataView(ipc.buffer, ipc.byteOffset, ipc.byteLength);
  const bad = (why: string) => new InvalidArgumentError(`not Arrow IPC stream bytes: ${why}`, "INVALID_ARGUMENT", false);
  const rows: bigint[] = [];
  let at = 0;
  while (at + 4 <= ipc.byteLength) {
    let len = view.getInt32(at, true);
    at += 4;
    if (len === -1) {
      if (at + 4 > ipc.byteLength) throw bad("truncated message length");
      len = view.getInt32(at, true);
      at += 4;
    }
    if (len === 0) break; // end of stream
    if (len < 0 || at + len > ipc.byteLength) throw bad("message length out of range");
    const meta = at;
    // Flatbuffer: the root table's offset, then its vtable (field offsets, 0 = absent).
    const field = (table: number, i: number): number => {
      const vt = table - view.getInt32(table, true);
      if (vt < meta || vt + 4 > meta + len) throw bad("malformed message header");
      const size = view.getUint16(vt, true);
      return 4 + 2 * i < size ? view.getUint16(vt + 4 + 2 * i, true) : 0;
    };
    const msg = meta + view.getUint32(meta, true);
    if (msg + 4 > meta + len) throw bad("malformed message header");
    const typeAt = field(msg, 1);
    const headerType = typeAt ? view.getUint8(msg + typeAt) : 0;
    const bodyAt = field(msg, 3);
    const body = bodyAt ? view.getBigInt64(msg + bodyAt, true) : 0n;
    if (headerType === RECORD_BATCH) {
      const hAt = field(msg, 2);
      if (!hAt) throw bad("record batch message without a header");
      const rb = msg + hAt + view.getUint32(msg + hAt, true);
      if (rb < meta || rb + 4 > meta + len) throw bad("malformed record batch header");
      const lenAt = field(rb, 0);
      rows.push(lenAt ? view.getBigInt64(rb + lenAt, true) : 0n);
    }
    at = meta + len + Number(body);
  }
  return rows;
}
