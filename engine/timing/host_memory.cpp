#include "engine/timing/host_memory.hpp"

#include <malloc.h>

namespace attncheck {

void keep_freed_host_memory() {
#ifdef __GLIBC__
    // Blocks up to 32 MiB (glibc's largest mmap threshold; mallopt refuses
    // more) from the heap, never trimmed below 1 GiB, grown 64 MiB at a time.
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_TOP_PAD, 64 << 20);
#endif
}

} // namespace attncheck
