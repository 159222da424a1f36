// grad *= grad_output, in place, for a gradient a forward wrote and nothing else holds (the eager
// backward of lossext/_registry.py, and cross_entropy's opt-in in-place gradient). Infrastructure,
// not a loss: the gradient is a contiguous (N, C, S) buffer and the factor is either one 0-d value
// (a reduced loss: skipped on the device when it is 1, so loss.backward() costs no pass) or one
// value per (n, s) sample (reduction 'none').
#pragma once

#include <c10/core/ScalarType.h>
#include <lossext/dispatch.h>

#include <cstdint>

namespace lossext {

struct ScaleRowsArgs {
  c10::ScalarType dtype = c10::ScalarType::Float;  // grad and factor
  int64_t N = 0, C = 0, S = 1;
  void* grad = nullptr;            // (N, C, S) contiguous
  const void* factor = nullptr;    // 0-d, or (N, S) contiguous when per_sample
  bool per_sample = false;
};

using ScaleRowsFn = void (*)(const ScaleRowsArgs&);
LOSSEXT_DECLARE_STUB(scale_rows_stub, ScaleRowsFn);

}  // namespace lossext
