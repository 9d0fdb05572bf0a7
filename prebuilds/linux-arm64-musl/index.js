// zerobus-bun's native library for linux-arm64-musl (aarch64-unknown-linux-musl). `library` is its path. Imported
// `with { type: "file" }`, the library is also embedded by `bun build --compile` in the executable
// of an app that uses zerobus-bun, and `library` is then its path inside the executable.
// zerobus-local, beside it, is not imported: an executable holds it only when given to bun build.
import library from "./libzerobus_bun.so" with { type: "file" };

export { library };
