/*
 * Test-only stand-in for bcryptprimitives.dll, which Windows 10+ ships but Debian's wine 8 does not.
 * Rust's std (1.78+) takes its random numbers from bcryptprimitives!ProcessPrng, so without this the
 * DLL does not load under wine 8 (LoadLibrary error 126, "Library bcryptprimitives.dll ... not found").
 * scripts/verify-prebuilds.ts builds it next to harness.exe, where the loader looks first. It is never
 * shipped: on Windows the system's DLL is used.
 */
#include <windows.h>

/* advapi32!SystemFunction036, a.k.a. RtlGenRandom */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
  while (len > 0) {
    ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
    if (!SystemFunction036(data, n)) return FALSE;
    data += n;
    len -= n;
  }
  return TRUE;
}
