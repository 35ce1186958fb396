// The process's host allocator, set for runs that build and drop many
// large arrays (a case's Q/K/V, its metamorphic variants, observations).
#pragma once

namespace attncheck {

// glibc returns large freed blocks to the kernel (blocks above the mmap
// threshold are unmapped on free; heaps are trimmed), so the next case
// faults the same memory in again, page by page. On the GPU machine (a
// KVM guest) a first touch is expensive: keeping freed memory in the heap
// raised `bench throughput --backend cuda` from 398 to 453 cases/s on the
// H200 (bench/results/2026-12-02-h200-host-memory/). Memory is kept at its
// peak instead, a few hundred MB per worker. Call once, first thing in main.
void keep_freed_host_memory();

} // namespace attncheck
