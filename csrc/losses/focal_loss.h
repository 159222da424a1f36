// focal_loss, the softmax (multi-class) form, as a row-wise functor: cross_entropy's plain
// statistics (m = max_c x_c, z = sum_c exp(x_c - m)), a different per-row coefficient.
// With lp_c = log p_c = (x_c - m) - log z, q_c = 1 - p_c = -expm1(lp_c), the focal terms
//   g(p) = -q^g log p  (the loss of a class)   kf(p) = -p g'(p) = q^g (1 + g p (-lp) / q),
// u_c = w_c a_c (class weight times alpha: alpha[c] per class, else the float alpha, 1 without),
// and r the row's gradient scale:
//   loss    = u_t g(p_t)
//   dL/dx_c = r u_t kf(p_t) (p_c - [c == t])      (from dp_t/dx_c = p_t ([c == t] - p_c))
// Label smoothing eps (cross_entropy's rule, e = eps / C): beta_c = (1-eps) u_t [c == t] + e u_c,
//   loss    = (1-eps) u_t g(p_t) + e sum_c u_c g(p_c)
//   dL/dx_c = r [ p_c K - beta_c kf(p_c) ],  K = sum_j beta_j kf(p_j) = (1-eps) u_t kf(p_t) + e Sk
// where Sg = sum_c u_c g(p_c) and Sk = sum_c u_c kf(p_c) need the row's lse: the driver's second
// sweep (kStats2, lossext/rowwise.h); Sk is saved for a separate backward.
// Stable at p -> 1: (-lp) / q -> 1 (taken as 1 at q = 0), q^0 = 1 exactly for g = 0 (0^0 = 1),
// so g < 1 stays finite; at g = 0, alpha = None it is cross_entropy exactly (smoothing included).
#pragma once

#include <losses/cross_entropy.h>

#include <cmath>

namespace lossext {

struct FocalParams {
  double gamma = 2;
  double alpha = 1;            // the float alpha (1 without one)
  const void* alpha_c = nullptr;  // a per-class alpha (C,), contiguous, in the math type; nullptr: none
  double smoothing = 0;        // label smoothing in [0, 1]
};

// What a row's sweeps compute (compile-time): plain; smoothed with u_c = alpha; smoothed with
// per-class u_c (RowwiseArgs::sweep_weight or the class weights, handed to the functor as w).
enum FocalKind : int { kFocalPlain = 0, kFocalSmooth = 1, kFocalSmoothW = 2 };

template <class M, int K = kFocalPlain>
struct FocalRow : CrossEntropyRow<M, kCEPlain> {
  using Base = CrossEntropyRow<M, kCEPlain>;
  using Base::kCA;
  using Base::kCby;
  using Base::kCe;
  using Base::kClz;
  using Base::kCm;
  using Base::kCoefs;
  using Base::kCt;
  using Base::kM;
  using Base::kStats;
  using Base::kZ;
  static constexpr bool kSmooth = K != kFocalPlain;
  static constexpr bool kWeighted = K == kFocalSmoothW;  // the sweeps read u_c as w
  static constexpr int kStats2 = kSmooth ? 2 : 0;         // Sg, Sk
  static constexpr int kSaved = kSmooth ? 3 : 2;          // m, log z (, Sk)
  enum { kSg, kSk };
  M gamma, alpha;
  const M* alpha_c;
  int gk;  // 0: g = 0, 2: g = 2, 3: any other g
  M eps, es, asw;  // smoothing, eps / C, the sweeps' scalar factor (the float alpha; 1 when u_c is in w)

  C10_HOST_DEVICE FocalRow(const FocalParams& p, int64_t classes, M w_total)
      : Base(CrossEntropyParams{}, classes, w_total), gamma(static_cast<M>(p.gamma)),
        alpha(static_cast<M>(p.alpha)), alpha_c(static_cast<const M*>(p.alpha_c)),
        gk(p.gamma == 0 ? 0 : p.gamma == 2 ? 2 : 3), eps(static_cast<M>(p.smoothing)),
        es(classes > 0 ? static_cast<M>(p.smoothing) / static_cast<M>(classes) : M(0)),
        asw(p.alpha_c ? M(1) : static_cast<M>(p.alpha)) {}

  // q^g and kf (above) of log-probabilities lp <= 0 (NaN for a non-finite row); scalars or lanes.
  template <class V>
  C10_HOST_DEVICE void terms(const V& lp, V& qg, V& kf) const {
    const V one(M(1)), zero(M(0));
    const V q = zero - vm::expm1(lp), p = vm::exp(lp);
    qg = gk == 0 ? one : gk == 2 ? q * q : vm::exp(V(gamma) * vm::log(q));
    const V ratio = vm::where(q > zero, (zero - lp) / q, one);
    kf = gk == 0 ? one : qg * (one + V(gamma) * vm::where(p > zero, p * ratio, zero));
  }

  C10_HOST_DEVICE M alpha_of(const RowSample<M>& smp) const {
    return alpha_c ? (smp.t >= 0 ? alpha_c[smp.t] : smp.wt) : alpha;  // (invalid: wt is NaN)
  }

  // k (and the loss) from (m, log z), the second sweep's sums (0 without smoothing), u_t, x_t and
  // r: scalars, or the rows of a CPU spatial block in vector lanes (finish_lanes).
  template <class V>
  C10_HOST_DEVICE V coefs_of(const V& m, const V& lz, const V& sg, const V& sk, const V& ut, const V& xt, const V& r,
                             V (&k)[kCoefs]) const {
    const V zero(M(0));
    const V nan_if = (m + lz) - (m + lz);
    const V nlp = (m - xt) + lz;  // -log p_t, as cross_entropy's
    V qg, kf;
    terms(zero - nlp, qg, kf);
    k[kCm] = m;
    k[kClz] = lz + nan_if;
    k[kCby] = zero;
    if constexpr (kSmooth) {
      const V kt = V(M(1) - eps) * ut * kf + V(es * asw) * sk;
      k[kCA] = r * kt * vm::exp(zero - lz) + nan_if;
      k[kCe] = r * V(es * asw);
      k[kCt] = r * ut * kf * V(es + (M(1) - eps));  // pass 2's e u_t kf_t plus the [c == t] term
      return V(M(1) - eps) * ut * qg * nlp + V(es * asw) * sg + nan_if;
    } else {
      const V s = r * ut * kf;
      k[kCA] = s * vm::exp(zero - lz) + nan_if;
      k[kCe] = zero;
      k[kCt] = s;
      return ut * qg * nlp + nan_if;
    }
  }
  C10_HOST_DEVICE M coefs(M m, M lz, M sg, M sk, const RowSample<M>& smp, M (&k)[kCoefs]) const {
    return coefs_of<M>(m, lz, sg, sk, smp.wt * alpha_of(smp), smp.xt, smp.r, k);
  }

  // finish of one row (scalars) or of a CPU spatial block's rows (lanes); smoothed: the loss and k
  // without the second sweep's sums, whose k[kCm], k[kClz] that sweep reads.
  template <class V>
  C10_HOST_DEVICE V finish_of(const V (&s)[kStats], const V& ut, const V& xt, const V& r, V (&k)[kCoefs],
                              V* saved) const {
    const V m = s[kM], lz = vm::log(s[kZ]);
    saved[0] = m;
    saved[1] = lz;
    return coefs_of<V>(m, lz, V(M(0)), V(M(0)), ut, xt, r, k);
  }
  C10_HOST_DEVICE M finish(const M (&s)[kStats], const RowSample<M>& smp, M (&k)[kCoefs], M* saved) const {
    return finish_of<M>(s, smp.wt * alpha_of(smp), smp.xt, smp.r, k, saved);
  }

  // The CPU spatial layout's finish of a block's rows in vector lanes (lossext/rowwise.h); the
  // smoothed kinds finish after their second sweep, lane by lane.
  static constexpr bool kLaneFinish = !kSmooth;
  template <class V>
  V finish_lanes(const V (&s)[kStats], const RowLanes<V>& ln, V (&k)[kCoefs], V (&saved)[kSaved]) const {
    V at(alpha);
    if (alpha_c) {  // alpha[t] per lane
      alignas(64) M buf[V::size()];
      for (int j = 0; j < V::size(); ++j) buf[j] = ln.t[j] >= 0 ? alpha_c[ln.t[j]] : M(0);
      at = V::loadu(buf);
    }
    return finish_of<V>(s, ln.wt * at, ln.xt, ln.r, k, saved);
  }

  // The second sweep (smoothed only): Sg and Sk with finish's m and log z.
  template <int U, class V>
  C10_HOST_DEVICE void add2(V (&s2)[kSmooth ? kStats2 : 1], const V (&k)[kCoefs], const V (&x)[U],
                            const V (&w)[U]) const {
    for (int u = 0; u < U; ++u) {
      const V lp = (x[u] - k[kCm]) - k[kClz];
      V qg, kf;
      terms(lp, qg, kf);
      V g = qg * (V(M(0)) - lp);
      if constexpr (kWeighted) {
        g = w[u] * g;
        kf = w[u] * kf;
      }
      s2[kSg] = s2[kSg] + g;
      s2[kSk] = s2[kSk] + kf;
    }
  }

  C10_HOST_DEVICE M finish2(const M (&s2)[kSmooth ? kStats2 : 1], const RowSample<M>& smp, M (&k)[kCoefs],
                            M* saved) const {
    saved[2] = s2[kSk];
    return coefs(saved[0], saved[1], s2[kSg], s2[kSk], smp, k);
  }

  C10_HOST_DEVICE void resume(const M* saved, const RowSample<M>& smp, M (&k)[kCoefs]) const {
    coefs(saved[0], saved[1], M(0), kSmooth ? saved[2] : M(0), smp, k);
  }

  template <class V>
  C10_HOST_DEVICE void grad(const V (&k)[kCoefs], const V& x, const V& y, const V& w, V& gx, V& gy) const {
    const V d = x - k[kCm];
    const V ap = k[kCA] * vm::fast_exp(d);
    if constexpr (kSmooth) {
      V qg, kf;
      terms(d - k[kClz], qg, kf);
      gx = ap - (kWeighted ? w * kf : kf) * k[kCe];
    } else {
      gx = ap;
    }
    gy = V(M(0));
  }
};

// The kind of a problem: smoothed rows read u_c from the sweeps' weights where there are any.
inline int focal_kind(const RowwiseArgs& a, const FocalParams& p) {
  if (!(p.smoothing > 0)) return kFocalPlain;
  return (a.weight || a.sweep_weight) ? kFocalSmoothW : kFocalSmooth;
}

// fn(std::integral_constant<int, K>{}) for the problem's kind.
template <class F>
inline void focal_dispatch_kind(const RowwiseArgs& a, const FocalParams& p, const F& fn) {
  switch (focal_kind(a, p)) {
    case kFocalPlain: return fn(std::integral_constant<int, kFocalPlain>{});
    case kFocalSmooth: return fn(std::integral_constant<int, kFocalSmooth>{});
    default: return fn(std::integral_constant<int, kFocalSmoothW>{});
  }
}

using FocalFn = void (*)(const RowwiseArgs&, const FocalParams&);
LOSSEXT_DECLARE_STUB(focal_loss_stub, FocalFn);

}  // namespace lossext
