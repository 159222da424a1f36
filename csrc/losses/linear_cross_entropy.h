// linear_cross_entropy: the LM head (logits = x W^T + b) and cross_entropy, chunk by chunk of tokens.
// The row math is cross_entropy's functor (losses/cross_entropy.h) run on each chunk's logits with
// the in-place gradient; this header declares the two small native helpers the chunk loop needs:
//   the mean's denominator over the whole target (on the device, no host sync), and
//   the fp32 accumulation of a half-type gradient across chunks (dW, db),
//   the softcap, and the per-token log-sum-exp and z-loss for logging (return_lse, return_z_loss).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>
#include <lossext/dispatch.h>
#include <lossext/rowwise.h>

#include <c10/macros/Macros.h>

#include <cmath>
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

// The stub on whole tensors (acc float32, part the half dtype; contiguous): the host side of the
// chunk loops of linear_cross_entropy and its vocab-parallel version.
inline void lce_accumulate(const at::Tensor& acc, const at::Tensor& part, LceAcc mode) {
  LceAccArgs a;
  a.dtype = part.scalar_type();
  a.n = part.numel();
  a.acc = acc.data_ptr<float>();
  a.part = part.data_ptr();
  a.mode = mode;
  lce_accumulate_stub(part.device().type())(a);
}

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

// For logging (return_lse / return_z_loss): from the forward's saved per-token (m, log z[, Sy]),
// lse_t = m + log z (0 for an ignored token) and the z-loss part of the loss, z w_t lse_t^2, per
// token (reduction none) or reduced as the loss (sum; mean: over the summed w_t of the kept
// tokens, or the token count for probability targets). Deterministic; no host sync on CUDA.
struct LceStatsArgs {
  c10::ScalarType dtype = c10::ScalarType::Float;  // of weight (the input's); lse and z: its math type
  int64_t n = 0, ks = 2, C = 0;                   // tokens, saved values per token, classes
  const void* saved = nullptr;                     // (n, ks) contiguous, math type
  const int64_t* target = nullptr;                 // (n) contiguous class indices; nullptr: probabilities
  const void* weight = nullptr;                    // (C) or nullptr (every class weighs 1)
  int64_t ignore_index = -100;
  double z = 0;
  Reduction reduction = Reduction::Mean;
  void* lse = nullptr;  // (n)
  void* zl = nullptr;   // (n) for none, else 0-d
};
using LceStatsFn = void (*)(const LceStatsArgs&);
LOSSEXT_DECLARE_STUB(lce_stats_stub, LceStatsFn);

// Token i's statistics (CPU and CUDA loops): lse_t, the z-loss term z w_t lse_t^2, and w_t (0 when
// ignored) for the mean. An index outside [0, C) with a class weight weighs NaN (the CPU raises first).
template <class T, class M>
C10_HOST_DEVICE inline void lce_token_stats(const LceStatsArgs& a, int64_t i, M& lse, M& zt, M& wt) {
  const M* sv = static_cast<const M*>(a.saved);
  const T* w = static_cast<const T*>(a.weight);
  wt = M(1);
  bool kept = true;
  if (a.target) {
    const int64_t t = a.target[i];
    kept = t != a.ignore_index;
    if (!kept) {
      wt = M(0);
    } else if (w) {
      wt = (t >= 0 && t < a.C) ? static_cast<M>(w[t]) : static_cast<M>(NAN);
    }
  }
  lse = kept ? sv[i * a.ks] + sv[i * a.ks + 1] : M(0);
  zt = static_cast<M>(a.z) * wt * lse * lse;
}

}  // namespace lossext
