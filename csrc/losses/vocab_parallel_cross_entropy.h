// vocab_parallel_cross_entropy: cross_entropy over logits whose class (vocabulary) dim is split
// across P processes; rank r holds the slice [o_r, o_r + V_r) of every row. Three native steps
// around one collective (lossext/distributed.py):
//   1. stats (per rank, the row-wise driver's forward with VocabStatsRow, a pass 1 of cross_entropy):
//      per row m_r = max x_c, z_r = sum exp(x_c - m_r) with its sign bit set when the target t is in
//      the slice (z_r >= 0 always, so the bit is free: -0.0 too), x_t (0 if t is not in the slice),
//      and with smoothing S_r = sum w_c (x_c - m_r) and W_r = sum w_c over the slice: [N, k] math
//      type, k = 3 (5 with smoothing): Megatron's 3 numbers per row, in one collective
//   2. all_gather of the [N, k] statistics: [P, N, k], the same bytes on every rank
//   3. combine (per rank, identical): M = max_r m_r, Z = sum_r z_r exp(m_r - M), lse = M + log Z, in
//      rank order (so every rank computes the same bits), and cross_entropy's loss
//        loss = (1-eps) w_t (lse - x_t) + (eps/V) sum_r [W_r (lse - m_r) - S_r]
//      with x_t = sum_r x_t,r (one rank holds it: exactly one sign bit set, else the target is invalid).
// The backward (per rank, no communication): the row-wise driver's backward with VocabGradRow, whose
// coefficients come from the combined (M, log Z, w_t, eps/V, eps W/V): cross_entropy's gradient
//   dL/dx_c = r [ ((1-eps) w_t + (eps/V) W) p_c - (eps/V) w_c - (1-eps) w_t [c == t] ],  p_c = exp(x_c - lse),
// on the local columns; the [c == t] term only on the rank holding t (RowwiseArgs::class_slice).
#pragma once

#include <lossext/dispatch.h>
#include <lossext/rowwise.h>
#include <losses/cross_entropy.h>

#include <cstdint>
#include <cstring>
#include <limits>

namespace lossext {

// Per-row statistics of step 1, and of the combined problem kept for the backward.
inline int64_t vpce_stats_count(bool smoothing) { return smoothing ? 5 : 3; }
constexpr int64_t kVpceSaved = 5;  // M, log Z, w_t, eps / V, eps W / V

// Step 1: cross_entropy's pass 1 (online max and sum of exponentials, the smoothing sums relative
// to the row's first finite logit), finished into the rank's row statistics instead of a loss.
template <class M, int K>
struct VocabStatsRow : CrossEntropyRow<M, K> {
  using Base = CrossEntropyRow<M, K>;
  using Base::Base;
  static constexpr int kSaved = Base::kLin ? 5 : 3;
  static constexpr bool kLaneFinish = false;  // (its own finish: the base's lanes finish is not it)

  C10_HOST_DEVICE M finish(const M (&s)[Base::kStats], const RowSample<M>& smp, M (&k)[Base::kCoefs],
                           M* saved) const {
    (void)k;
    const M m = s[Base::kM];
    const bool hit = smp.t >= 0;  // the target is in this slice (RowwiseArgs::class_slice)
    saved[0] = m;
    saved[1] = hit ? -s[Base::kZ] : s[Base::kZ];  // IEEE negation: the sign bit, also of 0 and NaN
    saved[2] = hit ? smp.xt : M(0);
    if constexpr (Base::kLin) {
      // sum w_c (x_c - m) = sum w_c (x_c - x0) - W (m - x0): relative to the slice's own max.
      saved[3] = s[Base::kSX] - this->W * (m - s[Base::kRef]);
      saved[4] = this->W;
    }
    return M(0);
  }
};

// The backward's functor: cross_entropy's gradient with the combined statistics (saved: kVpceSaved
// per row) in place of the row's own; the constructor's C and W (the slice's) are unused.
template <class M, int K>
struct VocabGradRow : CrossEntropyRow<M, K> {
  using Base = CrossEntropyRow<M, K>;
  using Base::Base;
  static constexpr int kSaved = kVpceSaved;
  static constexpr bool kLaneFinish = false;  // (a backward-only functor; never finishes)

  C10_HOST_DEVICE void resume(const M* saved, const RowSample<M>& smp, M (&k)[Base::kCoefs]) const {
    const M m = saved[0], lz = saved[1], wt = saved[2], es = saved[3], esW = saved[4];
    const M nan_if = (m + lz) - (m + lz);  // a non-finite lse: the row's gradient is NaN (as torch)
    const M a = smp.r * ((M(1) - this->eps) * wt + esW);
    k[Base::kCm] = m;
    k[Base::kClz] = lz + nan_if;
    k[Base::kCA] = a * vm::exp(-lz) + nan_if;
    k[Base::kCe] = smp.r * es;
    k[Base::kCby] = M(0);
    k[Base::kCt] = wt * k[Base::kCe] + smp.r * (M(1) - this->eps) * wt;
  }
};

// The kernels' kind: the smoothing sums (and the class weights in them) only where smoothing is on.
inline int vpce_kind(bool weighted, double smoothing) { return ce_kind(false, weighted, smoothing); }

// stats: `a` in forward mode over the slice (class_slice set), saved = the [N, k] statistics.
// grad:  `a` in backward mode, saved = the combined [N, kVpceSaved], mean_denominator set.
using VpceRowFn = void (*)(const RowwiseArgs& a, const CrossEntropyParams& p);
LOSSEXT_DECLARE_STUB(vpce_stats_stub, VpceRowFn);
LOSSEXT_DECLARE_STUB(vpce_grad_stub, VpceRowFn);

// Step 3 over the gathered statistics.
struct VpceCombineArgs {
  c10::ScalarType dtype = c10::ScalarType::Float;  // of the loss and the class weights
  int64_t P = 0, N = 0, k = 4;
  const void* stats = nullptr;   // [P, N, k] contiguous, math type
  const int64_t* target = nullptr;  // (N) contiguous, global classes
  const void* weight = nullptr;  // (V) contiguous, dtype; nullptr: unweighted
  int64_t V = 0;                 // weight's length (0 unweighted: V = sum_r W_r, or unused)
  int64_t ignore_index = -100;
  double smoothing = 0;
  Reduction reduction = Reduction::Mean;
  void* loss = nullptr;          // none: (N) dtype; mean/sum: 0-d dtype
  void* saved = nullptr;         // [N, kVpceSaved] math type
  double* denominator = nullptr; // 1 element on the device: the mean's denominator (sum of w_t)
};
using VpceCombineFn = void (*)(const VpceCombineArgs& a, const char* op);
LOSSEXT_DECLARE_STUB(vpce_combine_stub, VpceCombineFn);

// The sign bit of v (set for -0.0 and negative NaNs too): step 1's "the target is in my slice".
template <class M>
C10_HOST_DEVICE inline bool vpce_sign_bit(M v) {
  if constexpr (sizeof(M) == 4) {
    uint32_t u;
    memcpy(&u, &v, 4);
    return (u >> 31) != 0;
  } else {
    uint64_t u;
    memcpy(&u, &v, 8);
    return (u >> 63) != 0;
  }
}

// One row of step 3 (CPU and CUDA). Returns the row's loss; writes its saved statistics and its
// weight in the denominator; `bad`: 0 fine, 1 no rank holds the target (out of bounds), 2 several do.
template <class M, class T>
C10_HOST_DEVICE inline M vpce_combine_row(const VpceCombineArgs& a, int64_t n, M* saved, double& den, int& bad) {
  const M* st = static_cast<const M*>(a.stats);
  const int64_t t = a.target[n];
  den = 0;
  bad = 0;
  for (int q = 0; q < kVpceSaved; ++q) saved[q] = M(0);
  if (t == a.ignore_index) return M(0);
  M mx = st[n * a.k], xt = M(0);
  int64_t hits = 0;
  for (int64_t r = 0; r < a.P; ++r) {
    const M* s = st + (r * a.N + n) * a.k;
    mx = nan_max(mx, s[0]);
    hits += vpce_sign_bit(s[1]) ? 1 : 0;
    xt += s[2];  // zero on every rank but the target's
  }
  M z = M(0);
  for (int64_t r = 0; r < a.P; ++r) {
    const M* s = st + (r * a.N + n) * a.k;
    z += vm::abs(s[1]) * vm::exp(s[0] - mx);
  }
  if (t < 0 || hits != 1 || (a.weight && t >= a.V)) {
    bad = hits > 1 ? 2 : 1;
    const M nan = std::numeric_limits<M>::quiet_NaN();
    saved[0] = nan;
    return nan;
  }
  const M lz = vm::log(z);
  const M wt = a.weight ? static_cast<M>(static_cast<const T*>(a.weight)[t]) : M(1);
  const M eps = static_cast<M>(a.smoothing);
  M loss = (M(1) - eps) * wt * ((mx - xt) + lz);
  M es = M(0), esW = M(0);
  if (a.smoothing > 0) {
    M lin = M(0), W = M(0);
    for (int64_t r = 0; r < a.P; ++r) {
      const M* s = st + (r * a.N + n) * a.k;
      lin += s[4] * ((mx - s[0]) + lz) - s[3];
      W += s[4];
    }
    es = eps / (a.weight ? static_cast<M>(a.V) : W);
    esW = es * W;
    loss += es * lin;
  }
  saved[0] = mx;
  saved[1] = lz;
  saved[2] = wt;
  saved[3] = es;
  saved[4] = esW;
  den = a.weight ? static_cast<double>(wt) : 1.0;
  return loss + ((mx + lz) - (mx + lz));
}

}  // namespace lossext
