// soft_margin_loss, per element (z = x y):  f = log(1 + e^-z) = softplus(-z),
//   df/dx = -y sigmoid(-z),  df/dy = -x sigmoid(-z)
// softplus(-z) = max(-z, 0) + log1p(e^-|z|) never overflows: x = -1000, y = 1 gives 1000 and
// gradient -1, where torch's log1p(exp(-z)) gives inf and a NaN gradient (a deliberate deviation).
#pragma once

#include <lossext/dispatch.h>
#include <lossext/pair_loss.h>

namespace lossext {

struct SoftMarginBase {
  explicit C10_HOST_DEVICE SoftMarginBase(const double*) {}
  template <class V>
  C10_HOST_DEVICE V operator()(const V& x, const V& y, V& gx, V& gy) const {
    const V z = x * y, zero(0), one(1);
    const V e = vm::exp(zero - vm::abs(z));                // in (0, 1]: never overflows
    const V r = one / (one + e);
    const V s = vm::where(z > zero, e * r, r);             // sigmoid(-z)
    gx = zero - y * s;
    gy = zero - x * s;
    return vm::max(zero - z, zero) + vm::log1p(e);
  }
};
using SoftMarginLossOp = PairLoss<SoftMarginBase>;

LOSSEXT_DECLARE_STUB(soft_margin_loss_stub, PointwiseFn);

}  // namespace lossext
