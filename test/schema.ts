// A protobuf message schema built at runtime (no codegen): test.Event
import { create, createFileRegistry, type DescMessage } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FieldDescriptorProto_Type as Ty, FieldDescriptorProto_Label as L } from "@bufbuild/protobuf/wkt";

const file = create(FileDescriptorProtoSchema, {
  name: "test_event.proto",
  package: "test",
  syntax: "proto2",
  messageType: [
    {
      name: "Event",
      field: [
        { name: "id", number: 1, type: Ty.INT64, label: L.OPTIONAL, jsonName: "id" },
        { name: "name", number: 2, type: Ty.STRING, label: L.OPTIONAL, jsonName: "name" },
        { name: "score", number: 3, type: Ty.DOUBLE, label: L.OPTIONAL, jsonName: "score" },
        { name: "ok", number: 4, type: Ty.BOOL, label: L.OPTIONAL, jsonName: "ok" },
        { name: "payload", number: 5, type: Ty.BYTES, label: L.OPTIONAL, jsonName: "payload" },
        { name: "tags", number: 6, type: Ty.STRING, label: L.REPEATED, jsonName: "tags" },
      ],
    },
  ],
});

export const EventSchema: DescMessage = createFileRegistry(file, () => undefined).getMessage("test.Event")!;
