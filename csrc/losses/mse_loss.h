// mse_loss, per element (d = x - t):  f = d^2,  df/dx = 2 d,  df/dt = -2 d
#pragma once

#include <lossext/dispatch.h>
#include <lossext/pair_loss.h>

namespace lossext {

struct MseBase {
  explicit C10_HOST_DEVICE MseBase(const double*) {}
  template <class V>
  C10_HOST_DEVICE V operator()(const V& x, const V& t, V& gx, V& gt) const {
    const V d = x - t;
    gx = V(2) * d;
    gt = V(0) - gx;
    return d * d;
  }
};
using MseLossOp = PairLoss<MseBase>;

LOSSEXT_DECLARE_STUB(mse_loss_stub, PointwiseFn);

}  // namespace lossext
