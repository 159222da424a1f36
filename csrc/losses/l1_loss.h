// l1_loss, per element (d = x - t):  f = |d|,  df/dx = sign(d) (0 at d = 0, as torch),  df/dt = -df/dx
#pragma once

#include <lossext/dispatch.h>
#include <lossext/pair_loss.h>

namespace lossext {

struct L1Base {
  explicit C10_HOST_DEVICE L1Base(const double*) {}
  template <class V>
  C10_HOST_DEVICE V operator()(const V& x, const V& t, V& gx, V& gt) const {
    const V d = x - t;
    gx = vm::sign(d);
    gt = V(0) - gx;
    return vm::abs(d);
  }
};
using L1LossOp = PairLoss<L1Base>;

LOSSEXT_DECLARE_STUB(l1_loss_stub, PointwiseFn);

}  // namespace lossext
