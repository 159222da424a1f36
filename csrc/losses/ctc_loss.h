// ctc_loss: the connectionist temporal classification loss, a dynamic program over the extended
// label sequence l' = (blank, l_1, blank, l_2, ..., l_L, blank) of S' = 2L + 1 positions.
//
// Log space throughout (as torch; lp = log_probs of one sample, e_t(s) = lp[t][l'(s)]):
//   alpha_0(0) = e_0(0), alpha_0(1) = e_0(1), else -inf
//   alpha_t(s) = e_t(s) + lse(alpha_{t-1}(s), alpha_{t-1}(s-1), [skip(s)] alpha_{t-1}(s-2))
//   beta_{T-1}(S'-1) = e(S'-1), beta_{T-1}(S'-2) = e(S'-2), else -inf
//   beta_t(s)  = e_t(s) + lse(beta_{t+1}(s), beta_{t+1}(s+1), [skip(s+2)] beta_{t+1}(s+2))
//   skip(s) = s odd and l'(s) != l'(s-2);   nll = -lse(alpha_{T-1}(S'-1), alpha_{T-1}(S'-2))
// alpha and beta both contain e_t(s), hence the -lp in torch's gradient (matched exactly):
//   d nll / d lp[t][c] = exp(lp[t][c]) - exp(lse_{s: l'(s) = c}(alpha_t(s) + beta_t(s)) + nll - lp[t][c])
// for t < input_length, 0 for the rows t >= input_length; 0 everywhere for an impossible sample
// under zero_infinity, NaN in its rows t < input_length without it (torch: -inf + inf).
//
// Determinism: no float atomics. The per-class sum over the positions s with l'(s) = c runs in
// increasing s (CPU: one thread per sample; CUDA: the first occurrence of each label walks a
// precomputed chain of the next positions with the same label, the blanks (even s) are one
// fixed-tree block sum). Reductions over the batch are sums in double in sample order.
#pragma once

#include <c10/core/ScalarType.h>
#include <c10/macros/Macros.h>
#include <lossext/dispatch.h>
#include <lossext/vmath.h>

#include <cstdint>
#include <limits>

namespace lossext {

enum class CtcMode : int {
  kForward = 0,  // loss (and the gradient where grad != nullptr)
  kScale = 1,    // grad = raw * grad_output (per sample for 'none') * the reduction's per-sample scale
};

struct CtcArgs {
  CtcMode mode = CtcMode::kForward;
  c10::ScalarType dtype = c10::ScalarType::Float;  // math dtype of log_probs/loss/grad: float or double
  int64_t T = 0, N = 0, C = 0;
  int64_t max_target = 0;  // an upper bound of every target length (the scratch size of the DP)
  int64_t reduction = 0;   // 0 none, 1 mean, 2 sum
  int64_t blank = 0;
  bool zero_infinity = false;
  const void* log_probs = nullptr;  // (T, N, C) contiguous
  // Targets (int64): padded (N, S) with strides (tg_stride_n, tg_stride_s), or concatenated (numel).
  const int64_t* targets = nullptr;
  bool concatenated = false;
  int64_t tg_stride_n = 0, tg_stride_s = 1;
  int64_t tg_size = 0;                   // S (padded) or numel (concatenated)
  const int64_t* input_lengths = nullptr;   // (N), on the device of log_probs
  const int64_t* target_lengths = nullptr;  // (N)
  // CUDA only: lengths and target values not checked on the host (they live on the device):
  // an invalid sample gets a NaN loss and NaN gradient instead of an error.
  bool device_checks = false;
  void* loss = nullptr;  // (N) for reduction none, else 0-d; the math dtype
  void* grad = nullptr;  // (T, N, C) or nullptr; the math dtype
  bool grad_reduced = false;  // grad scaled by the reduction (mean/sum), else d loss_n / d lp (raw)
  // kScale: grad = raw * grad_output[n * go_stride] (go_stride 0: a 0-d grad_output) * scale_n
  const void* raw = nullptr;
  const void* grad_output = nullptr;
  int64_t go_stride = 0;
};

// The reduction's factor of sample n: mean divides by max(target_length, 1) and by N.
C10_HOST_DEVICE inline double ctc_sample_scale(int64_t reduction, int64_t target_length, int64_t N) {
  if (reduction != 1) return 1.0;
  return 1.0 / (double(target_length > 1 ? target_length : 1) * double(N));
}

// lse(a, b, c) in log space; -inf for three -inf (no -inf - -inf), NaN propagates.
template <class M>
C10_HOST_DEVICE inline M ctc_lse3(M a, M b, M c) {
  M m = a > b ? a : b;
  m = m > c ? m : c;
  if (a != a || b != b || c != c) return a + b + c;
  if (m == -std::numeric_limits<M>::infinity()) return m;
  return m + vm::log(vm::exp(a - m) + vm::exp(b - m) + vm::exp(c - m));
}

using CtcFn = void (*)(const CtcArgs&);
LOSSEXT_DECLARE_STUB(ctc_loss_stub, CtcFn);

}  // namespace lossext
