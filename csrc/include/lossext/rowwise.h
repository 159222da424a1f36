// The row-wise driver's contract: losses over a class dimension (cross_entropy, nll_loss, and
// later multi_margin & co.), shared by the host ops, the CPU loops and the CUDA kernels.
//
// The input is viewed as (N, C, S): N samples, C classes, S spatial positions (the product of
// d1..dk; 1 for (N, C) and (C) inputs). A "row" is the C values of one (n, s) sample. Every
// operand that has the input's shape (input, grad_input, probability targets, grad_target) has
// its own element strides (sN, sC, sS), and the host guarantees one of two layouts for all of
// them at once:
//   rows    (spatial == false): sC == 1, a row is contiguous; the loops vectorize along it.
//   spatial (spatial == true):  sS == 1, the class dim is strided; the loops put consecutive
//           spatial positions (= different rows) in the vector lanes and walk the classes.
// Per-sample tensors (class targets, the unreduced loss, lse, grad_output) are (N, S).
//
// Class-index targets: ignored samples (target == ignore_index) have weight 0. A target outside
// [0, C) raises IndexError on the CPU (checked in a pre-pass, before anything is written); CUDA
// kernels cannot raise without a host sync, so there the sample's loss and gradient row become
// NaN and it adds nothing to the mean's denominator (see sample_of below).
#pragma once

#include <c10/core/ScalarType.h>
#include <c10/macros/Macros.h>
#include <lossext/common.h>
#include <lossext/vmath.h>

#include <cmath>
#include <cstdint>
#include <limits>

namespace lossext {

enum class RowMode : int {
  kForward = 0,       // loss (+ lse), and the gradients where their pointers are set
  kBackward = 1,      // gradients only, from the saved lse and grad_output
  kScaleInPlace = 2,  // grad_input *= grad_output (per sample, or 0-d): the in-place backward
};

// Operands with the input's (N, C, S) shape.
enum RowOperand : int { kRowInput = 0, kRowGradInput = 1, kRowTarget = 2, kRowGradTarget = 3, kRowOperands = 4 };

struct RowwiseArgs {
  RowMode mode = RowMode::kForward;
  Reduction reduction = Reduction::Mean;
  c10::ScalarType dtype = c10::ScalarType::Float;  // input, weight, probability targets, loss, grads
  int64_t N = 0, C = 0, S = 1;
  bool spatial = false;
  int64_t st[kRowOperands][3] = {};  // (sN, sC, sS) of each (N, C, S) operand, in elements

  const void* input = nullptr;
  // Class indices (N, S) with strides tN, tS, int64 or uint8 - or probabilities (prob == true)
  // laid out like the input (strides st[kRowTarget]).
  const void* target = nullptr;
  bool prob = false;
  bool target_u8 = false;
  int64_t tN = 0, tS = 0;
  const void* weight = nullptr;  // (C,) contiguous, dtype; nullptr: every class weighs 1
  int64_t ignore_index = -100;
  double smoothing = 0;          // label smoothing, already clamped to [0, 1] (torch ignores < 0)

  void* loss = nullptr;          // forward. None: (N, S) contiguous; Mean/Sum: 0-d. dtype
  void* lse = nullptr;           // forward writes, backward reads: (N, S) contiguous, math type
  void* grad_input = nullptr;    // nullptr: not wanted
  void* grad_target = nullptr;   // nullptr: not wanted (probability targets only)
  // kBackward / kScaleInPlace: 0-d for Mean/Sum; (N, S) with strides gN, gS for None. dtype
  const void* grad_output = nullptr;
  int64_t gN = 0, gS = 0;
};

using RowwiseFn = void (*)(const RowwiseArgs&);

// Math type of a dtype: float for the half types, else the type itself.
template <class T>
struct RowMath { using type = T; };
template <> struct RowMath<c10::Half> { using type = float; };
template <> struct RowMath<c10::BFloat16> { using type = float; };

// ---- class-index targets ---------------------------------------------------------------------

C10_HOST_DEVICE inline int64_t class_at(const RowwiseArgs& a, int64_t n, int64_t s) {
  const int64_t off = n * a.tN + s * a.tS;
  return a.target_u8 ? static_cast<int64_t>(static_cast<const uint8_t*>(a.target)[off])
                     : static_cast<const int64_t*>(a.target)[off];
}

// One sample's class target: `active` = counts in the loss (not ignored, in range).
struct ClassSample {
  int64_t cls;
  bool active;
  bool invalid;  // neither ignore_index nor in [0, C)
};

C10_HOST_DEVICE inline ClassSample sample_of(const RowwiseArgs& a, int64_t n, int64_t s) {
  const int64_t t = class_at(a, n, s);
  const bool ignored = t == a.ignore_index;
  const bool invalid = !ignored && (t < 0 || t >= a.C);
  return {t, !ignored && !invalid, invalid};
}

// The sample's weight in the loss and in the mean's denominator: w[t] (1 unweighted), 0 ignored.
// An invalid target (CUDA only; the CPU raised before) weighs NaN in the loss, 0 in the denominator.
template <class T, class M = typename RowMath<T>::type>
C10_HOST_DEVICE inline M sample_weight(const RowwiseArgs& a, const ClassSample& cs) {
  if (cs.invalid) return std::numeric_limits<M>::quiet_NaN();
  if (!cs.active) return M(0);
  return a.weight ? static_cast<M>(static_cast<const T*>(a.weight)[cs.cls]) : M(1);
}

template <class T, class M = typename RowMath<T>::type>
C10_HOST_DEVICE inline M denominator_weight(const RowwiseArgs& a, const ClassSample& cs) {
  if (!cs.active) return M(0);
  return a.weight ? static_cast<M>(static_cast<const T*>(a.weight)[cs.cls]) : M(1);
}

// The denominator of the mean that needs no data: probability targets divide by the number of
// samples (NaN for an empty input, as torch). Class targets sum denominator_weight instead.
C10_HOST_DEVICE inline double prob_mean_denominator(const RowwiseArgs& a) {
  return a.C == 0 ? 0.0 : static_cast<double>(a.N) * static_cast<double>(a.S);
}

// ---- online log-sum-exp ----------------------------------------------------------------------
// A running (max m, sum z of exp(x - m)). Starting from m = lowest (finite, not -inf) keeps
// leading -inf values harmless: exp(-inf - lowest) = 0 and exp(lowest - lowest) = 1.
template <class M>
C10_HOST_DEVICE inline M lse_init_max() { return std::numeric_limits<M>::lowest(); }

// NaN-propagating max, so a NaN logit makes the row's lse NaN.
template <class M>
C10_HOST_DEVICE inline M nan_max(M a, M b) { return (a != a || a > b) ? a : b; }

// log-sum-exp from the final (m, z); non-finite results (a +inf or NaN logit, an all -inf row)
// become NaN, like torch's log_softmax of such rows.
template <class M>
C10_HOST_DEVICE inline M finish_lse(M m, M z) {
  const M l = m + vm::log(z);
  return l + (l - l);  // l - l is 0 for finite l, NaN otherwise
}

}  // namespace lossext
