// focal_loss, the softmax (multi-class) form, as a row-wise functor: cross_entropy's plain
// statistics (m = max_c x_c, z = sum_c exp(x_c - m)), a different per-row coefficient.
// With lp = log p_t = (x_t - m) - log z, q = 1 - p_t = -expm1(lp), a = alpha (alpha[t] per class,
// 1 without), w_t the class weight and r the row's gradient scale:
//   loss    = -w_t a q^g lp
//   dL/dx_c = r w_t K (p_c - [c == t]),  K = -p_t dl/dp_t = a q^g (1 + g p_t (-lp) / q)
// (from dl/dp = -a [q^g / p - g q^(g-1) lp] and dp_t/dx_c = p_t ([c == t] - p_c)).
// Stable at p_t -> 1: (-lp) / q -> 1 (taken as 1 at q = 0), q^0 = 1 exactly for g = 0 (0^0 = 1),
// so g < 1 stays finite; at g = 0, a = 1 it is cross_entropy exactly.
#pragma once

#include <losses/cross_entropy.h>

#include <cmath>

namespace lossext {

struct FocalParams {
  double gamma = 2;
  double alpha = 1;            // the float alpha (1 without one)
  const void* alpha_c = nullptr;  // a per-class alpha (C,), contiguous, in the math type; nullptr: none
};

C10_HOST_DEVICE inline float focal_expm1(float x) { return ::expm1f(x); }
C10_HOST_DEVICE inline double focal_expm1(double x) { return ::expm1(x); }

template <class M>
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
  M gamma, alpha;
  const M* alpha_c;
  int gk;  // 0: g = 0, 2: g = 2, 3: any other g

  C10_HOST_DEVICE FocalRow(const FocalParams& p, int64_t classes, M w_total)
      : Base(CrossEntropyParams{}, classes, w_total), gamma(static_cast<M>(p.gamma)),
        alpha(static_cast<M>(p.alpha)), alpha_c(static_cast<const M*>(p.alpha_c)),
        gk(p.gamma == 0 ? 0 : p.gamma == 2 ? 2 : 3) {}

  // q^g, and K / a (above); lp <= 0 (NaN for a non-finite row).
  C10_HOST_DEVICE void focal(M lp, M& qg, M& kf) const {
    const M q = -focal_expm1(lp), p = vm::exp(lp);
    qg = gk == 0 ? M(1) : gk == 2 ? q * q : vm::exp(gamma * vm::log(q));
    const M ratio = q > M(0) ? -lp / q : M(1);
    kf = gk == 0 ? M(1) : qg * (M(1) + gamma * (p > M(0) ? p * ratio : M(0)));
  }

  C10_HOST_DEVICE M alpha_of(const RowSample<M>& smp) const {
    return alpha_c ? (smp.t >= 0 ? alpha_c[smp.t] : smp.wt) : alpha;  // (invalid: wt is NaN)
  }

  C10_HOST_DEVICE void coefs(M m, M lz, const RowSample<M>& smp, M (&k)[kCoefs], M& loss) const {
    const M nan_if = (m + lz) - (m + lz);
    const M nlp = (m - smp.xt) + lz;  // -log p_t, as cross_entropy's
    M qg, kf;
    focal(-nlp, qg, kf);
    const M wa = smp.wt * alpha_of(smp);
    const M s = smp.r * wa * kf;
    k[kCm] = m;
    k[kClz] = lz + nan_if;
    k[kCA] = s * vm::exp(-lz) + nan_if;
    k[kCe] = M(0);
    k[kCby] = M(0);
    k[kCt] = s;
    loss = wa * qg * nlp + nan_if;
  }

  C10_HOST_DEVICE M finish(const M (&s)[kStats], const RowSample<M>& smp, M (&k)[kCoefs], M* saved) const {
    const M m = s[kM], lz = vm::log(s[kZ]);
    saved[0] = m;
    saved[1] = lz;
    M loss;
    coefs(m, lz, smp, k, loss);
    return loss;
  }

  C10_HOST_DEVICE void resume(const M* saved, const RowSample<M>& smp, M (&k)[kCoefs]) const {
    M loss;
    coefs(saved[0], saved[1], smp, k, loss);
  }
};

using FocalFn = void (*)(const RowwiseArgs&, const FocalParams&);
LOSSEXT_DECLARE_STUB(focal_loss_stub, FocalFn);

}  // namespace lossext
