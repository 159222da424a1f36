// Summing a broadcast gradient back to its operand's shape (mse_loss(input (3, 1), target (3, 4))
// gives a (3, 4) gradient that belongs to a (3, 1) input). Deterministic: each output element is
// summed by one thread (CPU) or one block with a fixed tree (CUDA), in double.
#pragma once

#include <c10/core/ScalarType.h>
#include <lossext/dispatch.h>

#include <cstdint>

namespace lossext {

constexpr int kSumToMaxDims = 16;

struct SumToArgs {
  c10::ScalarType dtype = c10::ScalarType::Float;
  const void* in = nullptr;  // the full gradient
  void* out = nullptr;       // contiguous, one element per combination of kept indices
  int64_t nout = 0;          // product of kept sizes
  int64_t nred = 0;          // product of reduced sizes
  int nk = 0, nr = 0;        // kept / reduced dimensions (row-major order)
  int64_t ksize[kSumToMaxDims] = {}, kstride[kSumToMaxDims] = {};
  int64_t rsize[kSumToMaxDims] = {}, rstride[kSumToMaxDims] = {};
};

// Offset (in elements) of `in` for linear index i over dims (size, stride), row-major.
C10_HOST_DEVICE inline int64_t sum_to_offset(int64_t i, int n, const int64_t* size, const int64_t* stride) {
  int64_t off = 0;
  for (int d = n - 1; d >= 0; --d) {
    const int64_t q = i / size[d];
    off += (i - q * size[d]) * stride[d];
    i = q;
  }
  return off;
}

using SumToFn = void (*)(const SumToArgs&);
LOSSEXT_DECLARE_STUB(sum_to_stub, SumToFn);

}  // namespace lossext
