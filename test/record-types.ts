// Type test (checked by tsc in typecheck.test.ts, never run): streams are typed by what they take.
// Each `@ts-expect-error` line must be a compile error; the others must compile.
import { create, type Message } from "@bufbuild/protobuf";
import type { GenMessage } from "@bufbuild/protobuf/codegenv2";
import type { ZerobusSdk, ZerobusStream } from "../src/index";
import { EventSchema as untyped } from "./schema";

/** test.Event as protoc-gen-es would generate it. */
type Event = Message<"test.Event"> & { id: bigint; name: string; score: number; ok: boolean; payload: Uint8Array; tags: string[] };
const EventSchema = untyped as GenMessage<Event>;

interface Order {
  id: number;
  item: string;
}

export async function types(sdk: ZerobusSdk) {
  const proto = await sdk.createStream({ table: "t", schema: EventSchema });
  await proto.ingest({ id: 1n, name: "a", score: 2.5 });
  await proto.ingest(create(EventSchema, { id: 2n }));
  await proto.ingest(new Uint8Array([8, 1]));
  proto.submitBatch([{ id: 3n }, new Uint8Array(0)]);
  // @ts-expect-error a string for a double
  await proto.ingest({ id: 1n, score: "hot" });
  // @ts-expect-error a misspelt field
  await proto.ingest({ id: 2n, nmae: "x" });
  // @ts-expect-error the init shape of an int64 is a bigint
  proto.submit({ id: "x" });
  // @ts-expect-error JSON text is not a message
  proto.submit('{"id":1}');

  const json = await sdk.createStream({ table: "t", recordType: "json" });
  await json.ingest({ any: "object", n: 1 });
  await json.ingest('{"text":1}');
  await json.ingest(new Uint8Array(0));
  const order: Order = { id: 1, item: "x" };
  json.submit(order); // an interface value
  // @ts-expect-error a protobuf message on a JSON stream
  await json.ingest(create(EventSchema, { id: 1n }));
  // @ts-expect-error a number is not a record
  json.submit(5);

  const orders = await sdk.createStream<Order>({ table: "t", recordType: "json" });
  orders.submit({ id: 1, item: "a" });
  // @ts-expect-error a field Order does not have
  orders.submit({ id: 1, item: "a", extra: true });

  const bytes = await sdk.createStream({ table: "t", recordType: "proto", descriptor: new Uint8Array(0) });
  bytes.submit(new Uint8Array(0));
  // @ts-expect-error without a schema a proto stream takes bytes only
  bytes.submit({ id: 1n });

  const opened: ZerobusStream<unknown> = sdk.openStream({ table: "t", recordType: Math.random() > 0.5 ? "json" : "proto" });
  opened.submit({ decided: "at run time" });
}
