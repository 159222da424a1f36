// multilabel_margin_loss as a row-wise functor of a target set (lossext/rowwise.h, kTargetSet; the
// drivers: cpu/rowwise_set.h, cuda/rowwise_set.cuh). A row's targets t_1..t_m are the classes listed
// before the first -1; y_c = [c is a target] (the is-target buffer, the second operand); a class
// listed twice is one target of the mask but two terms of the sums, as in torch. With
// z_jc = (1 - x_{t_j}) + x_c (torch's order of operations) and a NaN z counting 0 (torch's `if (z > 0)`):
//   loss    = 1/C sum_j sum_{c : y_c = 0} max(0, z_jc)
//   dL/dx_c = r/C sum_j [z_jc > 0]                                   (y_c = 0)
//   dL/dx_t = -r/C sum_{j : t_j = t} sum_{c : y_c = 0} [z_jc > 0]    (y_t = 1)
// The driver runs pass 1 once per listed target j, relative to x_{t_j} (kTargetStats): finish gives
// target j's loss term and coefficients k_j; pass 2 sums grad(k_j) over j, and a target class gets
// the sum of grad_target(k_j) over its listings.
#pragma once

#include <lossext/dispatch.h>
#include <lossext/rowwise.h>
#include <lossext/vmath.h>

#include <limits>

namespace lossext {

struct MultilabelMarginParams {};

template <class M>
struct MultilabelMarginRow {
  static constexpr bool kPass1 = true, kOther = true, kWeighted = false, kTargetStats = true, kTargetSet = true;
  enum { kA, kH, kD };  // statistics: 1 - x_t, sum max(0, z), sum [z > 0] over the non-targets
  static constexpr int kStats = 3;
  enum { kCa, kCs, kCt, kCnan };  // coefficients: 1 - x_t, r / C, dL/dx_t of this listing, NaN if invalid
  static constexpr int kCoefs = 4;
  static constexpr int kSaved = 0;  // a separate backward re-runs pass 1 (the is-target buffer is saved)

  M inv_c;

  C10_HOST_DEVICE MultilabelMarginRow(const MultilabelMarginParams&, int64_t classes, M)
      : inv_c(M(1) / static_cast<M>(classes)) {}

  // z = a - inf = -inf (or NaN): the padded lanes (y = 0 there) add nothing.
  C10_HOST_DEVICE static M pad() { return -std::numeric_limits<M>::infinity(); }

  template <class V>
  C10_HOST_DEVICE void init(V (&s)[kStats], const V&, const V& xt) const {
    s[kA] = V(M(1)) - xt;
    s[kH] = V(M(0));
    s[kD] = V(M(0));
  }

  // [z > 0] and max(0, z) on the non-target classes (y == 0), 0 elsewhere (no 0 * inf).
  template <class V>
  C10_HOST_DEVICE static void terms(const V& z, const V& y, V& h, V& d) {
    const V zero(M(0));
    const V on = vm::where(y == zero, V(M(1)), zero);
    d = vm::where(z > zero, on, zero);
    h = vm::where(z > zero, vm::where(y == zero, z, zero), zero);
  }

  template <bool kTail, int U, class V>
  C10_HOST_DEVICE void add(V (&s)[kStats], const V (&x)[U], const V (&y)[U], const V (&)[U]) const {
    for (int u = 0; u < U; ++u) {
      V h, d;
      terms(s[kA] + x[u], y[u], h, d);
      s[kH] = s[kH] + h;
      s[kD] = s[kD] + d;
    }
  }

  template <class V>
  C10_HOST_DEVICE void merge(V (&s)[kStats], const V (&o)[kStats]) const {
    s[kH] = s[kH] + o[kH];
    s[kD] = s[kD] + o[kD];
  }

  // wt is 1, or NaN for a row with an invalid target (CUDA): its loss and gradient become NaN.
  C10_HOST_DEVICE M finish(const M (&s)[kStats], const RowSample<M>& smp, M (&k)[kCoefs], M* saved) const {
    resume(saved, smp, k);
    k[kCt] = -k[kCs] * s[kD];
    return smp.wt * inv_c * s[kH];
  }

  // The coefficients grad() needs (not dL/dx_t, which only finish knows): the CUDA driver's pass 2.
  C10_HOST_DEVICE void resume(const M*, const RowSample<M>& smp, M (&k)[kCoefs]) const {
    k[kCa] = M(1) - smp.xt;
    k[kCs] = smp.r * smp.wt * inv_c;
    k[kCt] = M(0);
    k[kCnan] = smp.wt - smp.wt;
  }

  template <class V>
  C10_HOST_DEVICE void grad(const V (&k)[kCoefs], const V& x, const V& y, const V&, V& gx, V&) const {
    V h, d;
    terms(k[kCa] + x, y, h, d);
    gx = k[kCs] * d + k[kCnan];
  }

  C10_HOST_DEVICE M grad_target(const M (&k)[kCoefs], M) const { return k[kCt]; }
};

using MultilabelMarginFn = void (*)(const RowwiseArgs&, const MultilabelMarginParams&);
LOSSEXT_DECLARE_STUB(multilabel_margin_loss_stub, MultilabelMarginFn);

}  // namespace lossext
