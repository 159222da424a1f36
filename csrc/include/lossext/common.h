// Shared by every lossext op: the reduction enum, dtype dispatch, and small helpers.
// Safe to include from host C++, ISA-compiled CPU kernels and CUDA sources.
#pragma once

#include <c10/macros/Macros.h>
#include <c10/util/Exception.h>
#include <cstdint>

namespace lossext {

// Same numbering as at::Reduction, so C++ callers can pass at::Reduction values. (kl_div's
// 'batchmean' is sum plus a division by the batch size: its own option, not a reduction.)
enum class Reduction : int64_t { None = 0, Mean = 1, Sum = 2 };

inline Reduction to_reduction(int64_t r, const char* op) {
  TORCH_CHECK_VALUE(r >= 0 && r <= 2, op, ": reduction must be 0 (none), 1 (mean) or 2 (sum), but got ", r);
  return static_cast<Reduction>(r);
}

C10_HOST_DEVICE inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace lossext

// Every floating dtype a loss accepts: float32, float64, bfloat16, float16.
#define LOSSEXT_DISPATCH_FLOATING_TYPES(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, TYPE, NAME, __VA_ARGS__)
