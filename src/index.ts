export { ZerobusSdk, type ZerobusSdkOptions, type FlushOnExitOptions, type CreateStreamOptions, type CreateArrowStreamOptions, type StreamOptions } from "./sdk";
export { ZerobusArrowStream, type ArrowBatch } from "./arrow";
export { ZerobusStream, type RecordType, type StreamState, type StreamStats, type UnackedRecord, type HeadersFunction, type LogEvent, type LogLevel, type JsonRecord, type JsonObject } from "./stream";
export { ZerobusError, InvalidArgumentError, StreamFailedError, type ErrorCode } from "./errors";
export { startLocalServer, LocalServer, type LocalServerOptions, type Fault } from "./local";
export { libraryPath, platformTag } from "./native";
