// The row-wise driver: losses that reduce along a class (or feature) dimension. Shared by the host
// ops, the CPU driver (lossext/cpu/rowwise.h) and the CUDA driver (lossext/cuda/rowwise.cuh).
//
// Geometry. The input is viewed as (N, C, S): N samples, C classes, S spatial positions (the
// product of d1..dk; 1 for (N, C) and (C) inputs). A "row" is the C values of one (n, s) sample.
// Every operand with the input's shape (input, an optional second operand such as probability
// targets, and their gradients) has its own element strides (sN, sC, sS), and the host guarantees
// one of two layouts for all of them at once:
//   rows    (spatial == false): sC == 1, a row is contiguous; the CPU vectorizes along it.
//   spatial (spatial == true):  sS == 1, the class dim is strided; the CPU puts consecutive
//           positions (= different rows) in the vector lanes and walks the classes.
// Per-sample tensors (class targets, the unreduced loss, saved row statistics, grad_output) are (N, S).
//
// What the driver does for every loss: the geometry, class-index targets with ignore_index (an
// ignored row has loss 0 and a zero gradient row), class weights and the weighted mean's
// denominator, the reductions with deterministic sums, grad_output, and the saved statistics of a
// separate backward. A target outside [0, C) raises IndexError on the CPU (checked in a pre-pass,
// before anything is written); CUDA kernels cannot raise without a host sync, so there the sample's
// loss and gradient row become NaN and it adds nothing to the mean's denominator.
//
// What a loss supplies: a functor of its math (see losses/nll_loss.h for the smallest one and
// docs/adding_a_rowwise_loss.md). Per row, the driver calls
//   init(s, x0)                  s[kStats] = the identity of pass 1's statistics; x0 = the row's
//                                first element, a reference point for sums that would otherwise cancel
//   init(s, x0, xt)              instead, for a functor with kTargetStats = true (optional flag,
//                                default false): pass 1's statistics are taken relative to the
//                                target's logit xt (multi_margin_loss' z_c = margin - x_t + x_c)
// A functor with kTargetSet = true (optional flag; multilabel_margin_loss) has a set of target
// classes per row instead of one class index: it runs on its own drivers (cpu/rowwise_set.h,
// cuda/rowwise_set.cuh), which call pass 1 and finish once per listed target (see there).
//   add<kTail>(s, x[U], y[U], w[U])   pass 1 (only if kStats > 0): U consecutive elements of the row
//                                (or, spatially, U classes of L rows); w = class weights (1 when
//                                unweighted); in the tail (kTail) x = pad() and w = 0 in unused lanes
//   merge(s, o)                  combines two partial states (vector lanes, CUDA threads)
//   finish(s, smp, k, saved)     the row's loss; fills the gradient coefficients k[kCoefs] and the
//                                kSaved statistics a separate backward needs
//   resume(saved, smp, k)        the backward's k from the saved statistics
// A functor with kStats2 > 0 (optional, default 0; focal_loss with label smoothing) has statistics
// that need pass 1's result (sums of a nonlinear function of p_c = exp(x_c - lse)): in the forward,
// after finish, the driver sweeps the row once more,
//   add2<U>(s2, k, x[U], w[U])   s2[kStats2] plain sums (added in a fixed order), with finish's k;
//                                the driver discards what unused tail lanes add (whatever w and x
//                                hold there), so a zero weight times an infinite term stays NaN
//   finish2(s2, smp, k, saved)   the row's final loss; completes k and the saved statistics
// (a separate backward still only calls resume).
// A functor with kLaneFinish = true (optional; focal_loss) also has
//   finish_lanes(s, lanes, k, saved)  finish for the L rows of a CPU spatial block at once, over
//                                vector lanes (RowLanes: wt, xt, r per lane; t[j] the lane's class,
//                                -1 for a lane without a row); saved[kSaved] vectors
// which the CPU driver's spatial layout calls in the forward instead of finish lane by lane.
//   grad(k, x, y, w, gx, gy)     pass 2 (only if a gradient is wanted): dL/dx (and dL/dy) of U
//                                elements, [c == t] terms excluded
//   grad_target(k, x_t)          class targets: dL/dx_t, written over pass 2's value at c == t
// Every method is a template over V: scalars (host, CUDA) or at::vec::Vectorized lanes (CPU),
// written with lossext/vmath.h. `smp` (RowSample) holds the target's weight and logit and the
// row's gradient scale r (1/denominator for mean, 1 for sum, times grad_output in the backward).
//
// The class-target rules are nll_loss's by default; RowwiseArgs' use_ignore_index, weighted_mean,
// background_class and index_error switch them to another loss's (multi_margin_loss: no ignore_index, the weighted
// mean divides by the row count, an out-of-range target is a RuntimeError).
// Embedding losses (cosine_embedding_loss, triplet_margin_loss) add, all opt-in with defaults that
// leave the class losses unchanged:
//   args.value        a per-row value target (N, S) in float32/float64 instead of class indices,
//                     handed to the functor as smp.v (double: compared exactly as torch compares it)
//   args.empty_row_loss  a row of C == 0 elements still has a loss (finish on the identity
//                     statistics: 1 - cos = 1, the margin) and counts in the mean; by default such
//                     a row is an empty sum (loss 0) and the mean's denominator is 0
//   F::kThird         a third input-shaped operand (args.third, gradient args.grad_third): the
//                     functor's add/grad take it after y: add(s, x, y, z, w), grad(k, x, y, z, w,
//                     gx, gy, gz)
#pragma once

#include <c10/core/ScalarType.h>
#include <c10/macros/Macros.h>
#include <lossext/common.h>
#include <lossext/vmath.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace lossext {

enum class RowMode : int {
  kForward = 0,   // loss (+ saved statistics), and the gradients where their pointers are set
  kBackward = 1,  // gradients only, from the saved statistics and grad_output
};

// Operands with the input's (N, C, S) shape.
enum RowOperand : int {
  kRowInput = 0,
  kRowGradInput = 1,
  kRowOther = 2,
  kRowGradOther = 3,
  kRowThird = 4,
  kRowGradThird = 5,
  kRowOperands = 6
};

struct RowwiseArgs {
  RowMode mode = RowMode::kForward;
  Reduction reduction = Reduction::Mean;
  c10::ScalarType dtype = c10::ScalarType::Float;  // input, weight, second operand, loss, grads
  int64_t N = 0, C = 0, S = 1;
  bool spatial = false;
  int64_t st[kRowOperands][3] = {};  // (sN, sC, sS) of each (N, C, S) operand, in elements

  const void* input = nullptr;
  const void* other = nullptr;   // a second operand laid out like the input (probability targets), or nullptr
  // Class indices (N, S) with strides tN, tS, int64 or uint8; nullptr when the loss has none.
  const void* target = nullptr;
  bool target_u8 = false;
  int64_t tN = 0, tS = 0;
  int64_t tC = 0;  // target-set losses (kTargetSet): the class stride of the (N, C) int64 target
  // A per-row value target (N, S) with strides vN, vS: float64 if value_f64, else float32; nullptr
  // when the loss has none (embedding losses: cosine_embedding_loss's y).
  const void* value = nullptr;
  bool value_f64 = false;
  int64_t vN = 0, vS = 0;
  // A row of no elements still has a loss and counts in the mean (see the top of this file).
  bool empty_row_loss = false;
  const void* third = nullptr;   // a third operand laid out like the input (triplet's negative), or nullptr
  void* grad_third = nullptr;    // nullptr: not wanted
  const void* weight = nullptr;  // (C,) contiguous, dtype; nullptr: every class weighs 1
  // The per-class factors the sweeps hand the functor as w (F::kWeighted), when they differ from
  // the class weights (focal_loss: w_c alpha_c): (C,) contiguous in the math type; nullptr: weight.
  // The mean's denominator, W and RowSample::wt still come from weight.
  const void* sweep_weight = nullptr;
  int64_t ignore_index = -100;
  bool use_ignore_index = true;  // false: no target is ignored (ignore_index unused)
  bool weighted_mean = true;     // false: the mean divides by the number of rows, not by sum of w[t]
  bool index_error = true;       // the CPU's error for a target outside [0, C): IndexError, else RuntimeError
  // A target == C is a valid row without a target class (sigmoid_focal_loss' background: all
  // negatives): it counts in the mean (weight 1) and has no [c == t] term. Off: C is out of range.
  bool background_class = false;
  // The mean's denominator computed by the caller over a larger problem than this call's rows (a
  // chunked loss: linear_cross_entropy runs its chunks of logits one call each), on the input's
  // device; nullptr: the driver's own pre-pass over these rows. Used for the mean loss and for r.
  const double* mean_denominator = nullptr;
  // A vocabulary slice (opt-in; vocab-parallel cross-entropy): the input's C classes are the global
  // classes [class_offset, class_offset + C) of a problem split across processes, and the class
  // targets hold global indices. A target in the slice maps to its local column; one outside it
  // keeps its row active (the row's softmax still has a gradient here) with no [c == t] column
  // (ClassSample::cls = -1). Only a negative target is invalid locally: the caller checks that
  // exactly one slice holds each target. The class weights (weight) are the slice's.
  bool class_slice = false;
  int64_t class_offset = 0;

  void* loss = nullptr;          // forward. None: (N, S) contiguous; Mean/Sum: 0-d. dtype
  void* saved = nullptr;         // forward writes, backward reads: (N, S, kSaved) contiguous, math type
  void* grad_input = nullptr;    // nullptr: not wanted
  void* grad_other = nullptr;    // nullptr: not wanted
  // kBackward: 0-d for Mean/Sum; (N, S) with strides gN, gS for None. dtype
  const void* grad_output = nullptr;
  int64_t gN = 0, gS = 0;
};

// Math type of a dtype: float for the half types, else the type itself.
template <class T>
struct RowMath { using type = T; };
template <> struct RowMath<c10::Half> { using type = float; };
template <> struct RowMath<c10::BFloat16> { using type = float; };

// What the functor sees of its row beyond the row itself.
template <class M>
struct RowSample {
  M wt;  // class targets: weight of the target class (1 unweighted; NaN for an invalid target, CUDA)
  M xt;  // class targets: the target's logit (read before pass 2, which may overwrite it in place)
  M r;   // the gradient scale of the row
  double v = 0;  // the row's value target (args.value), 0 without one
  int64_t t = -1;  // class targets: the target class (a per-class option of the loss: focal_loss' alpha); -1 else
};

// The samples of the rows in a CPU spatial block's vector lanes (F::kLaneFinish): RowSample's
// fields as vectors, the target classes per lane (-1: no row or no class target).
template <class V>
struct RowLanes {
  V wt, xt, r;
  const int64_t* t;
};

// Whether F finishes a spatial block's rows in vector lanes (F::kLaneFinish; false when absent).
template <class F, class = void>
struct RowLaneFinish { static constexpr bool value = false; };
template <class F>
struct RowLaneFinish<F, std::void_t<decltype(F::kLaneFinish)>> { static constexpr bool value = F::kLaneFinish; };

// The row's value target (args.value), 0 without one.
C10_HOST_DEVICE inline double value_at(const RowwiseArgs& a, int64_t n, int64_t s) {
  if (!a.value) return 0.0;
  const int64_t off = n * a.vN + s * a.vS;
  return a.value_f64 ? static_cast<const double*>(a.value)[off]
                     : static_cast<double>(static_cast<const float*>(a.value)[off]);
}

// Whether F's statistics merge by plain addition (F::kSumStats; false when F does not declare it):
// the CPU driver then folds the vector lanes with ATen's shuffle reduction instead of the generic
// tree through memory (whose partial reloads stall store forwarding: ~100 ns a row).
template <class F, class = void>
struct RowSumStats { static constexpr bool value = false; };
template <class F>
struct RowSumStats<F, std::void_t<decltype(F::kSumStats)>> { static constexpr bool value = F::kSumStats; };

// F's number of second-sweep statistics (F::kStats2; 0 when F does not declare it).
template <class F, class = void>
struct RowStats2 { static constexpr int value = 0; };
template <class F>
struct RowStats2<F, std::void_t<decltype(F::kStats2)>> { static constexpr int value = F::kStats2; };

// Whether functor F takes a third operand (F::kThird; false when F does not declare it).
template <class F, class = void>
struct RowThird { static constexpr bool value = false; };
template <class F>
struct RowThird<F, std::void_t<decltype(F::kThird)>> { static constexpr bool value = F::kThird; };

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

// Losses without class targets: every row is active.
C10_HOST_DEVICE C10_ALWAYS_INLINE ClassSample sample_of(const RowwiseArgs& a, int64_t n, int64_t s) {
  if (!a.target) return {-1, true, false};
  const int64_t t = class_at(a, n, s);
  const bool ignored = a.use_ignore_index && t == a.ignore_index;
  if (a.class_slice) {
    if (ignored || t < 0) return {t, false, !ignored};
    const int64_t local = t - a.class_offset;
    return {(local >= 0 && local < a.C) ? local : -1, true, false};
  }
  if (!ignored && a.background_class && t == a.C) return {-1, true, false};  // (no target class)
  const bool invalid = !ignored && (t < 0 || t >= a.C);
  return {t, !ignored && !invalid, invalid};
}

// The sample's weight in the mean's denominator: w[t] (1 unweighted), 0 ignored or invalid.
template <class T, class M = typename RowMath<T>::type>
C10_HOST_DEVICE inline M denominator_weight(const RowwiseArgs& a, const ClassSample& cs) {
  if (!cs.active) return M(0);
  return (a.weight && a.weighted_mean && cs.cls >= 0) ? static_cast<M>(static_cast<const T*>(a.weight)[cs.cls]) : M(1);
}

// The denominator of the mean that needs no data (no class targets): the number of rows, NaN for
// an empty input (as torch's mean of nothing).
C10_HOST_DEVICE inline double rows_mean_denominator(const RowwiseArgs& a) {
  return (a.C == 0 && !a.empty_row_loss) ? 0.0 : static_cast<double>(a.N) * static_cast<double>(a.S);
}

// The sample handed to the functor: wt = w[t] (NaN for an invalid target), xt = x[t] (0 without
// a class target; never read out of range).
template <class T, class M = typename RowMath<T>::type>
C10_HOST_DEVICE inline RowSample<M> row_sample(const RowwiseArgs& a, const ClassSample& cs, const T* x, int64_t sc,
                                               M r) {
  if (cs.invalid) return {std::numeric_limits<M>::quiet_NaN(), std::numeric_limits<M>::quiet_NaN(), r};
  if (cs.cls < 0) return {M(1), M(0), r};  // (smp.v: set by the driver from value_at)
  const M wt = a.weight ? static_cast<M>(static_cast<const T*>(a.weight)[cs.cls]) : M(1);
  RowSample<M> smp{wt, static_cast<M>(x[cs.cls * sc]), r};
  smp.t = cs.cls;
  return smp;
}

// Row (n, s) of every (N, C, S) operand (nullptr where absent).
template <class T>
struct RowPtrs {
  const T* x;
  const T* y;
  T* g;
  T* gy;
  const T* z;  // the third operand (F::kThird)
  T* gz;
};

template <class T>
C10_HOST_DEVICE C10_ALWAYS_INLINE RowPtrs<T> row_ptrs(const RowwiseArgs& a, int64_t n, int64_t s) {
  auto at = [&](const void* base, int k) -> T* {
    return base ? static_cast<T*>(const_cast<void*>(base)) + n * a.st[k][0] + s * a.st[k][2] : nullptr;
  };
  return {at(a.input, kRowInput),  at(a.other, kRowOther),         at(a.grad_input, kRowGradInput),
          at(a.grad_other, kRowGradOther), at(a.third, kRowThird), at(a.grad_third, kRowGradThird)};
}

// Pass 1's init: init(s, x0), or init(s, x0, xt) for a functor declaring kTargetStats = true.
template <class F, class = void>
struct RowTargetStats : std::false_type {};
template <class F>
struct RowTargetStats<F, std::void_t<decltype(F::kTargetStats)>> : std::integral_constant<bool, F::kTargetStats> {};

template <class F, class V>
C10_HOST_DEVICE inline void row_init(const F& f, V (&s)[F::kStats], const V& x0, const V& xt) {
  if constexpr (RowTargetStats<F>::value) {
    f.init(s, x0, xt);
  } else {
    f.init(s, x0);
  }
}

// NaN-propagating max, so a NaN logit makes the row's statistics NaN.
template <class M>
C10_HOST_DEVICE inline M nan_max(M a, M b) { return (a != a || a > b) ? a : b; }

}  // namespace lossext
