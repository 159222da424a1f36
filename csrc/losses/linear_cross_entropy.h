// linear_cross_entropy: the LM head (logits = x W^T + b) and cross_entropy, chunk by chunk of tokens.
// The row math is cross_entropy's functor (losses/cross_entropy.h) run on each chunk's logits with
// the in-place gradient; this header declares the two small native helpers the chunk loop needs:
//   the mean's denominator over the whole target (on the device, no host sync), and
//   the fp32 accumulation of a half-type gradient across chunks (dW, db).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>
#include <lossext/dispatch.h>
#include <lossext/rowwise.h>

#include <cstdint>

namespace lossext {

// The mean's denominator of the full problem `a` (the summed weight of its non-ignored targets, or
// its row count for probability targets) as a 1-element float64 tensor on the device. The CPU
// raises IndexError for a target outside [0, C) (before any logits are computed).
using LceDenominatorFn = at::Tensor (*)(const RowwiseArgs& a, const char* op);
LOSSEXT_DECLARE_STUB(lce_denominator_stub, LceDenominatorFn);

// acc (float32) and part (half dtype), n elements each, contiguous.
enum class LceAcc : int {
  kSet = 0,    // acc = part
  kAdd = 1,    // acc += part
  kFinish = 2, // part = half(acc + part): the last chunk's partial, rounded once
  kCast = 3,   // part = half(acc)
};
struct LceAccArgs {
  c10::ScalarType dtype = c10::ScalarType::BFloat16;  // of part
  int64_t n = 0;
  float* acc = nullptr;
  void* part = nullptr;
  LceAcc mode = LceAcc::kAdd;
};
using LceAccFn = void (*)(const LceAccArgs&);
LOSSEXT_DECLARE_STUB(lce_accumulate_stub, LceAccFn);

// Softcap (opt-in, Gemma-style): y = cap tanh(x / cap) over a chunk's logits, in place, with a copy
// of y (kApply); after the row kernel wrote dL/dy over them, dL/dx = dL/dy (1 - (y / cap)^2) (kGrad).
enum class LceCap : int { kApply = 0, kGrad = 1 };
struct LceCapArgs {
  c10::ScalarType dtype = c10::ScalarType::Float;  // of x and y
  int64_t n = 0;
  void* x = nullptr;  // the logits, then their gradient
  void* y = nullptr;  // the capped logits (written by kApply, read by kGrad)
  double cap = 0;
  LceCap mode = LceCap::kApply;
};
using LceCapFn = void (*)(const LceCapArgs&);
LOSSEXT_DECLARE_STUB(lce_softcap_stub, LceCapFn);

}  // namespace lossext
