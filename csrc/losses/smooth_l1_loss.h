// smooth_l1_loss with beta >= 0, per element (d = x - t):
//   f = |d| < beta ? d^2 / (2 beta) : |d| - beta / 2,  df/dx = clamp(d / beta, -1, 1),  df/dt = -df/dx
// beta = 0 is l1_loss, as torch's functional makes it: f = |d|, df/dx = sign(d) (0 at d = 0 and
// for NaN, where the formula above would give 0/0). The branch is on an option: uniform, no lanes.
#pragma once

#include <lossext/dispatch.h>
#include <lossext/pair_loss.h>

namespace lossext {

struct SmoothL1Base {
  double beta, inv_beta;  // 1 / beta: one multiply instead of two divisions per element
  explicit C10_HOST_DEVICE SmoothL1Base(const double* p) : beta(p[0]), inv_beta(p[0] == 0 ? 0.0 : 1.0 / p[0]) {}
  template <class V>
  C10_HOST_DEVICE V operator()(const V& x, const V& t, V& gx, V& gt) const {
    const V d = x - t, a = vm::abs(d), one(1);
    if (beta == 0) {
      gx = vm::sign(d);
      gt = V(0) - gx;
      return a;
    }
    const V b(beta), ib(inv_beta), half(0.5);
    const V q = d * ib;
    gx = vm::min(vm::max(q, V(0) - one), one);
    gt = V(0) - gx;
    return vm::where(a < b, half * d * q, a - half * b);
  }
};
using SmoothL1LossOp = PairLoss<SmoothL1Base>;

LOSSEXT_DECLARE_STUB(smooth_l1_loss_stub, PointwiseFn);

}  // namespace lossext
