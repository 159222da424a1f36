// huber_loss with delta > 0, per element (d = x - t):
//   f = |d| < delta ? d^2 / 2 : delta (|d| - delta / 2),  df/dx = clamp(d, -delta, delta),  df/dt = -df/dx
// The clamp propagates NaN, as torch's backward does.
#pragma once

#include <lossext/dispatch.h>
#include <lossext/pair_loss.h>

namespace lossext {

struct HuberBase {
  double delta;
  explicit C10_HOST_DEVICE HuberBase(const double* p) : delta(p[0]) {}
  template <class V>
  C10_HOST_DEVICE V operator()(const V& x, const V& t, V& gx, V& gt) const {
    const V d = x - t, a = vm::abs(d), dl(delta), half(0.5);
    gx = vm::min(vm::max(d, V(0) - dl), dl);
    gt = V(0) - gx;
    return vm::where(a < dl, half * d * d, dl * (a - half * dl));
  }
};
using HuberLossOp = PairLoss<HuberBase>;

LOSSEXT_DECLARE_STUB(huber_loss_stub, PointwiseFn);

}  // namespace lossext
