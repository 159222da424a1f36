// gaussian_nll_loss, per element. Operands: x (input), t (target), v (var; absent = the constant 1,
// scaled by the `var` float). Params: var scale, eps, the constant added to each element.
//
//   c = max(v, eps)                    (NaN stays NaN, as torch's clamp)
//   loss = 0.5 (log c + (x - t)^2 / c) [+ 0.5 log(2 pi) when full]
//   d/dx = (x - t) / c     d/dt = -(x - t) / c     d/dv = 0.5 (1 - (x - t)^2 / c) / c
// torch clamps a clone of var under no_grad, so autograd sees the identity: the var gradient is the
// formula at the clamped value, also where v < eps. We give exactly that.
#pragma once

#include <lossext/dispatch.h>
#include <lossext/pointwise.h>
#include <lossext/vmath.h>

namespace lossext {

struct GaussianNLLOp {
  static constexpr int kInputs = 3, kGrads = 3;
  double var_scale, eps, constant;
  // params: {var scale (the float var, or 1 for a tensor var), eps, 0 or 0.5 log(2 pi)}
  explicit C10_HOST_DEVICE GaussianNLLOp(const double* p) : var_scale(p[0]), eps(p[1]), constant(p[2]) {}
  template <class V>
  C10_HOST_DEVICE V operator()(const V (&in)[3], V (&g)[3]) const {
    const V half(0.5);
    const V c = vm::max(in[2] * V(var_scale), V(eps));
    // Divisions, not products with 1 / c: 1 / c overflows for a subnormal c (var = 1e-39, eps = 0)
    // where torch's (x - t) / c and (x - t)^2 / c stay finite.
    const V d = in[0] - in[1];
    const V gx = d / c;
    const V q = d * gx;  // (x - t)^2 / c
    g[0] = gx;
    g[1] = V(0) - gx;
    g[2] = half / c - (half * q) / c;  // as torch's log and div backward add up (inf - inf = NaN at c = 0)
    return half * (vm::log(c) + q) + V(constant);
  }
};

// Counts the elements < 0 (Sum reduction): gaussian_nll_loss's "var has negative entry" check,
// done by the pointwise driver so any layout and device works without a copy. NaN is not < 0.
struct CountNegativeOp {
  static constexpr int kInputs = 1, kGrads = 1;
  explicit C10_HOST_DEVICE CountNegativeOp(const double*) {}
  template <class V>
  C10_HOST_DEVICE V operator()(const V (&in)[1], V (&g)[1]) const {
    g[0] = V(0);
    return vm::where(in[0] < V(0), V(1), V(0));
  }
};

LOSSEXT_DECLARE_STUB(gaussian_nll_loss_stub, PointwiseFn);
LOSSEXT_DECLARE_STUB(count_negative_stub, PointwiseFn);

}  // namespace lossext
