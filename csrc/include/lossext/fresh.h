// Fresh CPU output buffers (gradients, unreduced losses) that lossext will write in full.
//
// A new multi-megabyte tensor comes from the allocator as untouched pages, and the first write to
// each 4 KiB page faults; on the 2-core development machine that made writing a fresh 512 MiB
// gradient cost 4-6x the write itself (0.17 s vs 0.03 s). Where the kernel leaves transparent huge
// pages to madvise (Linux's default), advising the buffer's 2 MiB-aligned interior before the
// first write turns 512 faults per 2 MiB into one. Same memory, same contents; only the page size
// of our own fresh buffers changes. LOSSEXT_HUGE_PAGES=0 turns it off.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace lossext {

inline bool huge_pages_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("LOSSEXT_HUGE_PAGES");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return on;
}

// Returns t, its large CPU buffer advised to use huge pages. Call before anything writes to t.
inline at::Tensor fresh(at::Tensor t) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  constexpr size_t kMinBytes = size_t(8) << 20;
  if (t.defined() && t.is_cpu() && t.nbytes() >= kMinBytes && huge_pages_enabled()) {
    const uintptr_t b = reinterpret_cast<uintptr_t>(t.data_ptr());
    const uintptr_t lo = (b + kHuge - 1) & ~(kHuge - 1), hi = (b + t.nbytes()) & ~(kHuge - 1);
    if (hi > lo) (void)madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);  // advice only
  }
#endif
  return t;
}

}  // namespace lossext
