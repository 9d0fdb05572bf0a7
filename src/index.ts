// The package's public API (`import ... from "zerobus-bun"`).
export { ZerobusSdk, type ZerobusSdkOptions, type FlushOnExitOptions, type ExitSignal, type CreateStreamOptions, type CreateArrowStreamOptions, type StreamOptions } from "./sdk.js";
export { ZerobusArrowStream, type ArrowBatch } from "./arrow.js";
export { ZerobusStream, type RecordType, type StreamState, type StreamStats, type UnackedRecord, type HeadersFunction, type LogEvent, type LogLevel, type JsonRecord, type JsonObject } from "./stream.js";
export { ZerobusError, InvalidArgumentError, StreamFailedError, type ErrorCode } from "./errors.js";
export { startLocalServer, LocalServer, type LocalServerOptions, type Fault } from "./local.js";
export { libraryPath, platformTag } from "./native.js";
