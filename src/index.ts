export { ZerobusSdk, type ZerobusSdkOptions, type CreateStreamOptions, type StreamOptions } from "./sdk";
export { ZerobusStream, type RecordType, type StreamState, type JsonRecord } from "./stream";
export { ZerobusError, InvalidArgumentError, StreamFailedError, type ErrorCode } from "./errors";
export { startLocalServer, LocalServer, type LocalServerOptions, type Fault } from "./local";
export { libraryPath, platformTag } from "./native";
