// triplet_margin_loss as a row-wise functor (lossext/rowwise.h): a row is one sample's anchor a
// (the input), positive p (the second operand) and negative n (the third operand, F::kThird).
// Distances as torch's pairwise_distance: d(x, y) = ||x - y + eps||_q (q = the norm's p).
//   loss   = max(0, margin + d(a, p) - d_neg),  d_neg = d(a, n), or min(d(a, n), d(p, n)) with swap
//   dL/da  = h (D(u_ap) - w_an D(u_an)),  dL/dp = -h (D(u_ap) + w_pn D(u_pn)),  dL/dn = h (w_an D(u_an) + w_pn D(u_pn))
// with u_xy = x - y + eps, D(u) = d ||u||_q / du, h = r [margin + d(a, p) - d_neg >= 0] (clamp_min
// passes the gradient at the tie), and the min's weights (w_an, w_pn) = (1, 0), (0, 1), or
// (1/2, 1/2) at a tie (torch's minimum backward). D is torch's norm backward:
//   q = 2: u / ||u|| (0 at ||u|| = 0);  q = 1: sgn(u);  q = +-inf: sgn(u) [|u| == ||u||] / #ties;
//   other q: sgn(u) |u|^(q-1) / ||u||^(q-1) (0 at ||u|| = 0; for q < 1: 0 at u = 0);  q = 0: 0.
// One read of the three rows gathers the three distances' statistics; pass 2 writes the three
// gradients. A pair broadcast along the features (both of one feature) is read D times: its sum
// is scaled by inv_rep = 1/D, as is its gradient coefficient (the host sums the D copies back).
#pragma once

#include <lossext/dispatch.h>
#include <lossext/rowwise.h>

#include <limits>
#include <type_traits>

namespace lossext {

// The norm's kind, a template parameter (the common q = 2 and q = 1 carry no pow).
enum TripletNorm : int { kTripletL2 = 0, kTripletL1 = 1, kTripletLInf = 2, kTripletLq = 3 };

inline int triplet_norm_kind(double q) {
  if (q == 2.0) return kTripletL2;
  if (q == 1.0) return kTripletL1;
  if (q == std::numeric_limits<double>::infinity() || q == -std::numeric_limits<double>::infinity()) return kTripletLInf;
  return kTripletLq;
}

struct TripletMarginParams {
  double margin, p, eps;
  bool swap;
  double inv_rep[3] = {1, 1, 1};  // per pair (ap, an, pn): 1/D if both operands have one feature
};

// Dispatches the norm's kind to a compile-time constant: fn(std::integral_constant<int, K>{}).
template <class Fn>
inline void triplet_dispatch_norm(const TripletMarginParams& p, const Fn& fn) {
  switch (triplet_norm_kind(p.p)) {
    case kTripletL2: return fn(std::integral_constant<int, kTripletL2>{});
    case kTripletL1: return fn(std::integral_constant<int, kTripletL1>{});
    case kTripletLInf: return fn(std::integral_constant<int, kTripletLInf>{});
    default: return fn(std::integral_constant<int, kTripletLq>{});
  }
}

namespace triplet_detail {
C10_HOST_DEVICE inline float pow(float x, float y) { return ::powf(x, y); }
C10_HOST_DEVICE inline double pow(double x, double y) { return ::pow(x, y); }
#ifdef LOSSEXT_VMATH_VEC
template <class T>
inline at::vec::Vectorized<T> pow(const at::vec::Vectorized<T>& x, const at::vec::Vectorized<T>& y) {
  return x.pow(y);
}
#endif
}  // namespace triplet_detail

template <class M, int kNorm>
struct TripletMarginRow {
  static constexpr bool kPass1 = true, kOther = true, kWeighted = false, kThird = true;
  static constexpr bool kInf = kNorm == kTripletLInf;
  // Per pair (ap, an, pn): the sum of |u|^q, or for +-inf the extreme |u| and its number of ties.
  // Saved for the backward: the same.
  static constexpr int kStats = kInf ? 6 : 3, kCoefs = 6, kSaved = kStats;
  static constexpr bool kSumStats = !kInf;  // sums of |u|^q merge by addition (lossext/rowwise.h)

  M margin, q, eps, inv[3];
  bool swap, neg;  // neg: q = -inf (the extreme is the minimum)

  C10_HOST_DEVICE TripletMarginRow(const TripletMarginParams& p, int64_t, M)
      : margin(static_cast<M>(p.margin)), q(static_cast<M>(p.p)), eps(static_cast<M>(p.eps)),
        inv{static_cast<M>(p.inv_rep[0]), static_cast<M>(p.inv_rep[1]), static_cast<M>(p.inv_rep[2])},
        swap(p.swap), neg(p.p < 0) {}
  C10_HOST_DEVICE static M pad() { return M(0); }

  C10_HOST_DEVICE M ident() const { return neg ? std::numeric_limits<M>::infinity() : M(0); }

  // |u|^q of one difference (u^2, |u|, ...); for q = 0 the count of non-zeros, as torch's norm.
  template <class V>
  C10_HOST_DEVICE V term(const V& u) const {
    if constexpr (kNorm == kTripletL2) {
      return u * u;
    } else if constexpr (kNorm == kTripletL1) {
      return vm::abs(u);
    } else {
      if (q == M(0)) return vm::where(u != V(M(0)), V(M(1)), V(M(0)));
      return triplet_detail::pow(vm::abs(u), V(q));
    }
  }

  // (e, c) <- the extreme of (e, c) and (v, n) with its number of ties.
  template <class V>
  C10_HOST_DEVICE void fold_ext(V& e, V& c, const V& v, const V& n) const {
    const V m = neg ? vm::min(e, v) : vm::max(e, v);
    c = vm::where(e == m, c, V(M(0))) + vm::where(v == m, n, V(M(0)));
    e = m;
  }

  template <class V>
  C10_HOST_DEVICE void init(V (&s)[kStats], const V&) const {
    for (int k = 0; k < 3; ++k) s[k] = kInf ? V(ident()) : V(M(0));
    if constexpr (kInf)
      for (int k = 3; k < 6; ++k) s[k] = V(M(0));
  }

  template <bool kTail, int U, class V>
  C10_HOST_DEVICE void add(V (&s)[kStats], const V (&x)[U], const V (&y)[U], const V (&z)[U], const V (&w)[U]) const {
    const V e(eps), zero(M(0));
#pragma unroll
    for (int u = 0; u < U; ++u) {
      V d[3] = {x[u] - y[u] + e, x[u] - z[u] + e, zero};
      if (swap) d[2] = y[u] - z[u] + e;
      for (int k = 0; k < (swap ? 3 : 2); ++k) {
        if constexpr (kInf) {
          V a = vm::abs(d[k]), n(M(1));
          if constexpr (kTail) {  // unused lanes (w == 0) hold the identity
            a = vm::where(w[u] > zero, a, V(ident()));
            n = vm::where(w[u] > zero, n, zero);
          }
          fold_ext(s[k], s[3 + k], a, n);
        } else {
          V t = term(d[k]);
          if constexpr (kTail) t = vm::where(w[u] > zero, t, zero);
          s[k] = s[k] + t;
        }
      }
    }
  }
  template <class V>
  C10_HOST_DEVICE void merge(V (&s)[kStats], const V (&o)[kStats]) const {
    for (int k = 0; k < 3; ++k) {
      if constexpr (kInf) {
        fold_ext(s[k], s[3 + k], o[k], o[3 + k]);
      } else {
        s[k] = s[k] + o[k];
      }
    }
  }

  // The distance of pair k from its statistics.
  C10_HOST_DEVICE M dist(const M* st, int k) const {
    if constexpr (kInf) return st[k];
    const M v = st[k] * inv[k];
    if constexpr (kNorm == kTripletL2) return vm::sqrt(v);
    if constexpr (kNorm == kTripletL1) return v;
    return q == M(0) ? v : triplet_detail::pow(v, M(1) / q);
  }

  // k = {c_ap, c_an, c_pn, d_ap, d_an, d_pn}: the gradient coefficient of each pair (h, the min's
  // weight and the norm's scale) and the distances (the +-inf mask); returns the row's loss.
  C10_HOST_DEVICE M coefs(const M* st, const RowSample<M>& smp, M (&k)[kCoefs]) const {
    const M dap = dist(st, 0), dan = dist(st, 1), dpn = swap ? dist(st, 2) : M(0);
    const M dneg = swap ? vm::min(dan, dpn) : dan;  // NaN-propagating, as torch.minimum
    const M v = margin + dap - dneg;
    const M h = v >= M(0) ? smp.r : M(0);
    M wan = M(1), wpn = M(0);
    if (swap) {
      wan = dan < dpn ? M(1) : (dan == dpn ? M(0.5) : (dan > dpn ? M(0) : M(1)));
      wpn = dpn < dan ? M(1) : (dan == dpn ? M(0.5) : (dpn > dan ? M(0) : M(1)));
    }
    const M d[3] = {dap, dan, dpn}, wt[3] = {h, h * wan, h * wpn};
    for (int j = 0; j < 3; ++j) {
      M c;
      if constexpr (kNorm == kTripletL2) {
        c = d[j] == M(0) ? M(0) : wt[j] / d[j];
      } else if constexpr (kNorm == kTripletL1) {
        c = wt[j];
      } else if constexpr (kInf) {
        // Shared by the ties; no tie only for a NaN extreme (h = 0 then): 0, as torch's masked grad.
        c = st[3 + j] > M(0) ? wt[j] / st[3 + j] : M(0);
      } else {
        if (q == M(0)) {
          c = M(0);
        } else if (q < M(1)) {
          c = wt[j] * triplet_detail::pow(d[j], M(1) - q);
        } else {
          c = d[j] == M(0) ? M(0) : wt[j] / triplet_detail::pow(d[j], q - M(1));
        }
      }
      k[j] = kInf ? c : c * inv[j];
      k[3 + j] = d[j];
    }
    return vm::max(v, M(0));  // NaN stays NaN, as clamp_min
  }
  C10_HOST_DEVICE void resume(const M* saved, const RowSample<M>& smp, M (&k)[kCoefs]) const {
    coefs(saved, smp, k);
  }
  C10_HOST_DEVICE M finish(const M (&s)[kStats], const RowSample<M>& smp, M (&k)[kCoefs], M* saved) const {
    for (int j = 0; j < kSaved; ++j) saved[j] = s[j];
    return coefs(s, smp, k);
  }

  // D(u) / its coefficient's scale: the norm's derivative direction of one difference.
  template <class V>
  C10_HOST_DEVICE V dir(const V& u, const V& d) const {
    if constexpr (kNorm == kTripletL2) {
      return u;
    } else if constexpr (kNorm == kTripletL1) {
      return vm::sign(u);
    } else if constexpr (kInf) {
      return vm::where(vm::abs(u) == d, vm::sign(u), V(M(0)));
    } else {
      const V zero(M(0));
      const V g = vm::sign(u) * triplet_detail::pow(vm::abs(u), V(q - M(1)));
      return q < M(1) ? vm::where(u == zero, zero, g) : g;
    }
  }
  template <class V>
  C10_HOST_DEVICE void grad(const V (&k)[kCoefs], const V& x, const V& y, const V& z, const V&, V& gx, V& gy,
                            V& gz) const {
    const V e(eps);
    const V ap = k[0] * dir(x - y + e, k[3]), an = k[1] * dir(x - z + e, k[4]);
    gx = ap - an;
    gy = V(M(0)) - ap;
    gz = an;
    if (swap) {
      const V pn = k[2] * dir(y - z + e, k[5]);
      gy = gy - pn;
      gz = gz + pn;
    }
  }
  C10_HOST_DEVICE M grad_target(const M (&)[kCoefs], M) const { return M(0); }  // no class target
};

using TripletMarginFn = void (*)(const RowwiseArgs&, const TripletMarginParams&);
LOSSEXT_DECLARE_STUB(triplet_margin_loss_stub, TripletMarginFn);

}  // namespace lossext
