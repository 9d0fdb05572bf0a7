// Test preload: make sure the native library is built from the current sources (cargo is
// incremental, so this is quick when nothing changed). Skipped when ZEROBUS_BUN_LIB is set.
import { buildNative } from "../scripts/build";

if (!process.env.ZEROBUS_BUN_LIB) buildNative({ quiet: true });
if (process.env.ZEROBUS_GC_TORTURE) await import("./torture");
