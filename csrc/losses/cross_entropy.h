// cross_entropy as a row-wise functor (lossext/rowwise.h), shared by the CPU and CUDA drivers.
// Notation: x = logits of the row, m = max_c x_c, z = sum_c exp(x_c - m), lse = m + log z,
// p_c = exp(x_c - m) / z, w = class weights (1 unweighted), W = sum_c w_c, eps = label smoothing,
// r = the row's gradient scale.
//
// Class target t (sample weight wt = w_t), torch's smoothing rule:
//   loss    = (1-eps) wt (lse - x_t) + (eps/C) sum_c w_c (lse - x_c)
//   dL/dx_c = r [ ((1-eps) wt + (eps/C) W) p_c - (eps/C) w_c - (1-eps) wt [c == t] ]
// Probability target y (smoothed y' = (1-eps) y + eps/C), Sy = sum_c w_c y_c:
//   loss    = sum_c w_c y'_c (lse - x_c)
//   dL/dx_c = r [ ((1-eps) Sy + (eps/C) W) p_c - w_c y'_c ]      dL/dy_c = -r (1-eps) w_c (x_c - lse)
//
// Precision at any logit magnitude (as torch's log_softmax): p_c is exp(x_c - m) / z, never
// exp(x_c - lse) with a rounded lse; lse - x_t is (m - x_t) + log z; the linear sums are taken
// relative to the row's first finite logit (x0), so W lse - sum_c w_c x_c = W (lse - x0) - sum_c w_c (x_c - x0)
// does not cancel two huge numbers.
#pragma once

#include <lossext/dispatch.h>
#include <lossext/rowwise.h>
#include <lossext/vmath.h>

#include <limits>
#include <type_traits>

namespace lossext {

struct CrossEntropyParams {
  double smoothing = 0;  // clamped to [0, 1] by the host (torch ignores negative values)
  // Opt-in z-loss (linear_cross_entropy's extra; 0 for cross_entropy): each row adds z wt lse^2,
  // so dL/dx_c gains r 2 z wt lse p_c. A runtime per-row term: the plain path's bits are unchanged.
  double z_loss = 0;
};

// What a row's sweeps read and sum (compile-time, so the plain case carries no dead work).
enum CEKind : int { kCEPlain = 0, kCESmooth = 1, kCESmoothW = 2, kCEProb = 3, kCEProbW = 4 };

// Saved per row for a separate backward: m, log z (and Sy for probability targets).
inline int64_t ce_saved_count(bool prob) { return prob ? 3 : 2; }

template <class M, int K>
struct CrossEntropyRow {
  static constexpr bool kProb = K == kCEProb || K == kCEProbW;
  static constexpr bool kLin = K != kCEPlain;                   // pass 1 sums w_c (x_c - x0) (and y)
  static constexpr bool kPass1 = true;
  static constexpr bool kOther = kProb;                         // reads the probability targets
  static constexpr bool kWeighted = K == kCESmoothW || K == kCEProbW;  // the sweeps read w_c
  enum { kM, kZ, kRef, kSX, kSY, kSYX };                        // statistics
  static constexpr int kStats = kProb ? 6 : (kLin ? 4 : 2);
  enum { kCm, kClz, kCA, kCe, kCby, kCt };                      // gradient coefficients
  static constexpr int kCoefs = 6;
  static constexpr int kSaved = kProb ? 3 : 2;

  M eps, es, C, W;  // smoothing, eps / C (0 without smoothing), classes, summed weights
  M zl;             // z-loss coefficient (0: none)

  C10_HOST_DEVICE CrossEntropyRow(const CrossEntropyParams& p, int64_t classes, M w_total)
      : eps(static_cast<M>(p.smoothing)),
        es(p.smoothing > 0 ? static_cast<M>(p.smoothing) / static_cast<M>(classes) : M(0)),
        C(static_cast<M>(classes)), W(w_total), zl(static_cast<M>(p.z_loss)) {}

  // exp(-inf - m) = 0 for any m, even m = lowest (an all -inf row must keep z = 0: NaN, as torch).
  C10_HOST_DEVICE static M pad() { return -std::numeric_limits<M>::infinity(); }

  // m starts at lowest (finite), so leading -inf logits are harmless: exp(-inf - lowest) = 0.
  template <class V>
  C10_HOST_DEVICE void init(V (&s)[kStats], const V& x0) const {
    s[kM] = V(std::numeric_limits<M>::lowest());
    s[kZ] = V(M(0));
    if constexpr (kLin) {
      s[kRef] = vm::finite_or_zero(x0);
      for (int i = kSX; i < kStats; ++i) s[i] = V(M(0));
    }
  }

  // The online max / sum of exponentials: z is rescaled only when the group raises the maximum
  // (rare after the first groups of a row), so the cost is ~1 exp per element.
  template <bool kTail, int U, class V>
  C10_HOST_DEVICE void add(V (&s)[kStats], const V (&x)[U], const V (&y)[U], const V (&w)[U]) const {
    V bm = x[0];
    for (int u = 1; u < U; ++u) bm = vm::max(bm, x[u]);
    if (!vm::all_le(bm, s[kM])) {  // a new maximum (or a NaN) in some lane
      const V mn = vm::max(s[kM], bm);
      s[kZ] = s[kZ] * vm::fast_exp(s[kM] - mn);
      s[kM] = mn;
    }
    V e = vm::fast_exp(x[0] - s[kM]);
    for (int u = 1; u < U; ++u) e = e + vm::fast_exp(x[u] - s[kM]);
    s[kZ] = s[kZ] + e;
    if constexpr (kLin) {
      for (int u = 0; u < U; ++u) {
        V d = x[u] - s[kRef];
        V wd = kWeighted ? w[u] * d : d;
        V wy = kWeighted ? w[u] * y[u] : y[u];
        V wyd = wy * d;
        if constexpr (kTail) {  // padded lanes (w = 0, x = -inf) add nothing to the linear sums
          const V zero(M(0));
          const V used = w[u] != zero;
          wd = vm::where(used, w[u] * d, zero);
          wyd = vm::where(used, wyd, zero);
        }
        s[kSX] = s[kSX] + wd;
        if constexpr (kProb) {
          s[kSY] = s[kSY] + wy;
          s[kSYX] = s[kSYX] + wyd;
        }
      }
    }
  }

  template <class V>
  C10_HOST_DEVICE void merge(V (&s)[kStats], const V (&o)[kStats]) const {
    const V mn = vm::max(s[kM], o[kM]);
    s[kZ] = s[kZ] * vm::fast_exp(s[kM] - mn) + o[kZ] * vm::fast_exp(o[kM] - mn);
    s[kM] = mn;
    for (int i = kSX; i < kStats; ++i) s[i] = s[i] + o[i];
  }

  // k from (m, log z, Sy). A non-finite lse (a +inf or NaN logit, an all -inf row) makes the
  // row's loss and gradient NaN, like torch's log_softmax of such rows: (lse - lse) is 0 or NaN.
  // Scalars, or (V = at::vec::Vectorized) the rows of a CPU spatial block in vector lanes.
  template <class V>
  C10_HOST_DEVICE void coefs_of(const V& m, const V& lz, const V& sy, const V& wt, const V& r, V (&k)[kCoefs]) const {
    const V nan_if = (m + lz) - (m + lz);
    const V es_W(es * W);
    V a;
    if constexpr (kProb) {
      a = r * (V(M(1) - eps) * sy + es_W);
      k[kCby] = r * V(M(1) - eps);
    } else {
      a = r * (V(M(1) - eps) * wt + es_W);
      k[kCby] = V(M(0));
    }
    if (zl != M(0)) a = a + r * V(M(2)) * V(zl) * wt * (m + lz);
    k[kCm] = m;
    k[kClz] = lz + nan_if;  // dL/dy_c = -(x_c - lse) is NaN too for a non-finite lse
    k[kCA] = a * vm::exp(V(M(0)) - lz) + nan_if;
    k[kCe] = r * V(es);
    k[kCt] = wt * k[kCe] + r * V(M(1) - eps) * wt;  // w_t e + b: the [c == t] terms
  }
  C10_HOST_DEVICE void coefs(M m, M lz, M sy, const RowSample<M>& smp, M (&k)[kCoefs]) const {
    coefs_of<M>(m, lz, sy, smp.wt, smp.r, k);
  }

  template <class V>
  C10_HOST_DEVICE V finish_of(const V (&s)[kStats], const V& wt, const V& xt, const V& r, V (&k)[kCoefs],
                              V* saved) const {
    const V m = s[kM], lz = vm::log(s[kZ]);
    V sy(M(0));
    if constexpr (kProb) sy = s[kSY];
    coefs_of<V>(m, lz, sy, wt, r, k);
    saved[0] = m;
    saved[1] = lz;
    if constexpr (kProb) saved[2] = sy;
    V loss;
    if constexpr (kProb) {
      const V l0 = (m - s[kRef]) + lz;  // lse - x0
      // eps = 1 drops the target term (no 0 * inf where a logit is -inf, as torch's smoothed y').
      loss = eps < M(1) ? V(M(1) - eps) * (sy * l0 - s[kSYX]) : V(M(0));
      if (es > M(0)) loss = loss + V(es) * (V(W) * l0 - s[kSX]);
    } else {
      loss = V(M(1) - eps) * wt * ((m - xt) + lz);
      if constexpr (kLin) loss = loss + V(es) * (V(W) * ((m - s[kRef]) + lz) - s[kSX]);
    }
    if (zl != M(0)) loss = loss + V(zl) * wt * (m + lz) * (m + lz);
    return loss + ((m + lz) - (m + lz));
  }
  C10_HOST_DEVICE M finish(const M (&s)[kStats], const RowSample<M>& smp, M (&k)[kCoefs], M* saved) const {
    return finish_of<M>(s, smp.wt, smp.xt, smp.r, k, saved);
  }

  // The CPU spatial layout's finish of a block's rows in vector lanes (lossext/rowwise.h). A
  // functor derived from this one that overrides finish must set kLaneFinish = false (or its own).
  static constexpr bool kLaneFinish = true;
  template <class V>
  V finish_lanes(const V (&s)[kStats], const RowLanes<V>& ln, V (&k)[kCoefs], V (&saved)[kSaved]) const {
    return finish_of<V>(s, ln.wt, ln.xt, ln.r, k, saved);
  }

  C10_HOST_DEVICE void resume(const M* saved, const RowSample<M>& smp, M (&k)[kCoefs]) const {
    coefs(saved[0], saved[1], kProb ? saved[2] : M(0), smp, k);
  }

  template <class V>
  C10_HOST_DEVICE void grad(const V (&k)[kCoefs], const V& x, const V& y, const V& w, V& gx, V& gy) const {
    const V d = x - k[kCm];
    const V ap = k[kCA] * vm::fast_exp(d);
    if constexpr (kProb) {
      gx = ap - (kWeighted ? w : V(M(1))) * (k[kCby] * y + k[kCe]);
      gy = V(M(0)) - k[kCby] * (kWeighted ? w : V(M(1))) * (d - k[kClz]);
    } else if constexpr (kWeighted) {
      gx = ap - w * k[kCe];
    } else {
      gx = ap - k[kCe];
    }
  }

  C10_HOST_DEVICE M grad_target(const M (&k)[kCoefs], M xt) const {
    return k[kCA] * vm::fast_exp(xt - k[kCm]) - k[kCt];
  }
};

inline int ce_kind(bool prob, bool weighted, double smoothing) {
  if (prob) return weighted ? kCEProbW : kCEProb;
  if (smoothing > 0) return weighted ? kCESmoothW : kCESmooth;
  return kCEPlain;
}

// Dispatches the kind to a compile-time constant: fn(std::integral_constant<int, K>{}).
template <class F>
inline void ce_dispatch_kind(const RowwiseArgs& a, const CrossEntropyParams& p, const F& fn) {
  switch (ce_kind(a.other != nullptr, a.weight != nullptr, p.smoothing)) {
    case kCEPlain: return fn(std::integral_constant<int, kCEPlain>{});
    case kCESmooth: return fn(std::integral_constant<int, kCESmooth>{});
    case kCESmoothW: return fn(std::integral_constant<int, kCESmoothW>{});
    case kCEProb: return fn(std::integral_constant<int, kCEProb>{});
    default: return fn(std::integral_constant<int, kCEProbW>{});
  }
}

using CrossEntropyFn = void (*)(const RowwiseArgs&, const CrossEntropyParams&);
LOSSEXT_DECLARE_STUB(cross_entropy_stub, CrossEntropyFn);

}  // namespace lossext
