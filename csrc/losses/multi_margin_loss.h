// multi_margin_loss as a row-wise functor (lossext/rowwise.h). Target class t, z_c = (margin - x_t) + x_c
// (torch's order of operations), h(z) = z^p where z > 0 and 0 elsewhere (a NaN z counts 0, as torch's
// `if (z > 0)`), h'(z) = p z^(p-1) [z > 0]:
//   loss    = w_t / C * sum_{c != t} h(z_c)
//   dL/dx_c = r w_t / C * h'(z_c)                      (c != t)
//   dL/dx_t = -r w_t / C * sum_{c != t} h'(z_c)
// Pass 1 sums h and h' over the whole row relative to x_t (kTargetStats: the driver hands x_t to
// init), and finish removes the c == t term h(z_t), computed exactly as the sweep computed it, so
// no class index is needed in the sweep. The class weight enters through w_t only (kWeighted =
// false), and the mean divides by the row count (the host sets RowwiseArgs::weighted_mean = false).
#pragma once

#include <lossext/dispatch.h>
#include <lossext/rowwise.h>
#include <lossext/vmath.h>

#include <limits>

namespace lossext {

struct MultiMarginParams {
  int64_t p = 1;  // 1 or 2 (checked by the host)
  double margin = 1.0;
};

template <class M, int P>
struct MultiMarginRow {
  static constexpr bool kPass1 = true, kOther = false, kWeighted = false, kTargetStats = true;
  enum { kA, kH, kD };  // statistics: margin - x_t, sum h, sum h'
  static constexpr int kStats = 3;
  enum { kCa, kCs, kCt, kCnan };  // coefficients: margin - x_t, r w_t / C, dL/dx_t, NaN for an invalid target
  static constexpr int kCoefs = 4;
  static constexpr int kSaved = 1;  // sum_{c != t} h'(z_c), for a separate backward

  M margin, inv_c;

  C10_HOST_DEVICE MultiMarginRow(const MultiMarginParams& p, int64_t classes, M)
      : margin(static_cast<M>(p.margin)), inv_c(M(1) / static_cast<M>(classes)) {}

  // z = a - inf = -inf (or NaN): the padded lanes add nothing.
  C10_HOST_DEVICE static M pad() { return -std::numeric_limits<M>::infinity(); }

  template <class V>
  C10_HOST_DEVICE void init(V (&s)[kStats], const V&, const V& xt) const {
    s[kA] = V(margin) - xt;
    s[kH] = V(M(0));
    s[kD] = V(M(0));
  }

  // h(z) and h'(z) of one element or lane.
  template <class V>
  C10_HOST_DEVICE static void terms(const V& z, V& h, V& d) {
    const V zero(M(0));
    const auto pos = z > zero;
    if constexpr (P == 1) {
      h = vm::where(pos, z, zero);
      d = vm::where(pos, V(M(1)), zero);
    } else {
      const V zp = vm::where(pos, z, zero);
      h = zp * zp;
      d = V(M(2)) * zp;
    }
  }

  template <bool kTail, int U, class V>
  C10_HOST_DEVICE void add(V (&s)[kStats], const V (&x)[U], const V (&)[U], const V (&)[U]) const {
    for (int u = 0; u < U; ++u) {
      V h, d;
      terms(s[kA] + x[u], h, d);
      s[kH] = s[kH] + h;
      s[kD] = s[kD] + d;
    }
  }

  template <class V>
  C10_HOST_DEVICE void merge(V (&s)[kStats], const V (&o)[kStats]) const {
    s[kH] = s[kH] + o[kH];
    s[kD] = s[kD] + o[kD];
  }

  // k from the row's sum of h'. wt is NaN for an invalid target (CUDA): loss and gradient row NaN.
  C10_HOST_DEVICE void coefs(M sd, const RowSample<M>& smp, M (&k)[kCoefs]) const {
    k[kCa] = margin - smp.xt;
    k[kCs] = smp.r * smp.wt * inv_c;
    k[kCt] = -k[kCs] * sd;
    k[kCnan] = smp.wt - smp.wt;
  }

  C10_HOST_DEVICE M finish(const M (&s)[kStats], const RowSample<M>& smp, M (&k)[kCoefs], M* saved) const {
    M ht, dt;
    terms<M>((margin - smp.xt) + smp.xt, ht, dt);  // the c == t term the sweep added
    const M sd = s[kD] - dt;
    saved[0] = sd;
    coefs(sd, smp, k);
    return smp.wt * inv_c * (s[kH] - ht);
  }

  C10_HOST_DEVICE void resume(const M* saved, const RowSample<M>& smp, M (&k)[kCoefs]) const {
    coefs(saved[0], smp, k);
  }

  template <class V>
  C10_HOST_DEVICE void grad(const V (&k)[kCoefs], const V& x, const V&, const V&, V& gx, V&) const {
    V h, d;
    terms(k[kCa] + x, h, d);
    gx = k[kCs] * d + k[kCnan];
  }

  C10_HOST_DEVICE M grad_target(const M (&k)[kCoefs], M) const { return k[kCt]; }
};

// Dispatches p to a compile-time constant: fn(std::integral_constant<int, P>{}).
template <class F>
inline void multi_margin_dispatch_p(const MultiMarginParams& p, const F& fn) {
  if (p.p == 2) return fn(std::integral_constant<int, 2>{});
  return fn(std::integral_constant<int, 1>{});
}

using MultiMarginFn = void (*)(const RowwiseArgs&, const MultiMarginParams&);
LOSSEXT_DECLARE_STUB(multi_margin_loss_stub, MultiMarginFn);

}  // namespace lossext
