// cross_entropy on one row (see lossext/rowwise.h for the layout), shared by the CPU loops and the
// CUDA kernels. Notation: x = logits of the row, lse = log sum_c exp(x_c), p_c = exp(x_c - lse),
// w = class weights (1 unweighted), W = sum_c w_c, eps = label smoothing, r = the row's gradient
// scale (1/denominator for mean, 1 for sum, times grad_output in the backward).
//
// Class target t (sample weight wt = w_t, 0 when ignored), torch's smoothing rule:
//   loss   = (1-eps) wt (lse - x_t) + (eps/C) (W lse - sum_c w_c x_c)
//   dL/dx_c = r [ ((1-eps) wt + (eps/C) W) p_c - (eps/C) w_c - (1-eps) wt [c == t] ]
// Probability target y, smoothed y' = (1-eps) y + eps/C, Sy = sum_c w_c y_c:
//   loss   = -sum_c w_c y'_c (x_c - lse) = S' lse - T',   S' = (1-eps) Sy + (eps/C) W,
//            T' = (1-eps) sum_c w_c y_c x_c + (eps/C) sum_c w_c x_c
//   dL/dx_c = r [ S' p_c - w_c y'_c ]          dL/dy_c = -r (1-eps) w_c (x_c - lse)
// Both gradients have one shape, used by every kernel:
//   dL/dx_c = a p_c - w_c (by y_c + e) - b [c == t],   dL/dy_c = -by w_c (x_c - lse)
#pragma once

#include <lossext/dispatch.h>
#include <lossext/rowwise.h>

#include <type_traits>

namespace lossext {

// What a row's sweeps read and sum (compile-time, so the plain case carries no dead work).
enum CEKind : int { kCEPlain = 0, kCESmooth = 1, kCESmoothW = 2, kCEProb = 3, kCEProbW = 4 };

template <int K>
struct CETraits {
  static constexpr bool kProb = K == kCEProb || K == kCEProbW;
  static constexpr bool kW = K == kCESmoothW || K == kCEProbW;  // the sweeps read w_c
  static constexpr bool kLin = K != kCEPlain;                   // pass 1 sums w_c x_c (and y)
};

inline int ce_kind(const RowwiseArgs& a) {
  if (a.prob) return a.weight ? kCEProbW : kCEProb;
  if (a.smoothing > 0) return a.weight ? kCESmoothW : kCESmooth;
  return kCEPlain;
}

// Dispatches K = ce_kind(a) to a compile-time constant: fn(std::integral_constant<int, K>{}).
template <class F>
inline void ce_dispatch_kind(const RowwiseArgs& a, const F& fn) {
  switch (ce_kind(a)) {
    case kCEPlain: return fn(std::integral_constant<int, kCEPlain>{});
    case kCESmooth: return fn(std::integral_constant<int, kCESmooth>{});
    case kCESmoothW: return fn(std::integral_constant<int, kCESmoothW>{});
    case kCEProb: return fn(std::integral_constant<int, kCEProb>{});
    default: return fn(std::integral_constant<int, kCEProbW>{});
  }
}

template <class M>
struct CECoef {
  M a, b, by, e;
};

// Row constants shared by every row of a call.
template <class M>
struct CEConst {
  M eps, C, W;  // smoothing, class count, summed weights
};

// Class target, active sample: sx = sum_c w_c x_c (only read when eps > 0).
template <class M>
C10_HOST_DEVICE inline M ce_class_loss(const CEConst<M>& k, M wt, M lse, M xt, M sx) {
  M l = (M(1) - k.eps) * wt * (lse - xt);
  if (k.eps > M(0)) l += k.eps / k.C * (k.W * lse - sx);
  return l;
}

// The coefficients take the row's lse only to turn `a` into NaN when the lse is NaN (a NaN or
// +inf logit): the vector exp may map NaN to a finite value, and the row's gradient must be NaN.
template <class M>
C10_HOST_DEVICE inline CECoef<M> ce_class_coef(const CEConst<M>& k, M wt, M r, M lse) {
  const M es = k.eps > M(0) ? k.eps / k.C : M(0);
  return {r * ((M(1) - k.eps) * wt + es * k.W) + (lse - lse), r * (M(1) - k.eps) * wt, M(0), r * es};
}

// Probability target: sy = sum w y, syx = sum w y x, sx = sum w x.
template <class M>
C10_HOST_DEVICE inline M ce_prob_loss(const CEConst<M>& k, M lse, M sy, M syx, M sx) {
  const M es = k.eps > M(0) ? k.eps / k.C : M(0);
  const M s1 = (M(1) - k.eps) * sy + es * k.W;
  const M t1 = (M(1) - k.eps) * syx + es * sx;
  return s1 * lse - t1;
}

template <class M>
C10_HOST_DEVICE inline CECoef<M> ce_prob_coef(const CEConst<M>& k, M sy, M r, M lse) {
  const M es = k.eps > M(0) ? k.eps / k.C : M(0);
  return {r * ((M(1) - k.eps) * sy + es * k.W) + (lse - lse), M(0), r * (M(1) - k.eps), r * es};
}

// dL/dx_c without the [c == t] term, for scalars and vectors (w = 1 when unweighted).
template <int K, class V>
C10_HOST_DEVICE inline V ce_grad(const V& p, const V& y, const V& w, const V& a, const V& by, const V& e) {
  if constexpr (CETraits<K>::kProb) {
    return a * p - w * (by * y + e);
  } else if constexpr (CETraits<K>::kW) {
    return a * p - w * e;
  } else {
    return a * p - e;
  }
}

LOSSEXT_DECLARE_STUB(cross_entropy_stub, RowwiseFn);

}  // namespace lossext
