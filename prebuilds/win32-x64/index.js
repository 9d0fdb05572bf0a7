// zerobus-bun's native library for win32-x64 (x86_64-pc-windows-gnu). `library` is its path. Imported
// `with { type: "file" }`, the library is also embedded by `bun build --compile` in the executable
// of an app that uses zerobus-bun, and `library` is then its path inside the executable.
// zerobus-local.exe, beside it, is not imported: an executable holds it only when given to bun build.
import library from "./zerobus_bun.dll" with { type: "file" };

export { library };
