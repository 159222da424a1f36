// hinge_embedding_loss, per element, torch's two terms (a target outside {1, -1} takes both):
//   f = [y != 1] max(margin - x, 0) + [y != -1] x,   df/dx = -[y != 1][margin - x >= 0] + [y != -1],
//   df/dy = 0 (torch's comparisons with y are not differentiable; the op never asks for it)
// As torch's clamp_min: a NaN margin - x gives NaN, and its gradient passes at margin - x == 0 but
// not for NaN.
#pragma once

#include <lossext/dispatch.h>
#include <lossext/pair_loss.h>

namespace lossext {

struct HingeEmbeddingBase {
  double margin;
  explicit C10_HOST_DEVICE HingeEmbeddingBase(const double* p) : margin(p[0]) {}
  template <class V>
  C10_HOST_DEVICE V operator()(const V& x, const V& y, V& gx, V& gy) const {
    const V zero(0), one(1), u = V(margin) - x;
    const auto hinge = y != one, linear = y != zero - one;
    gx = vm::where(linear, one, zero) - vm::where(hinge, vm::where(u >= zero, one, zero), zero);
    gy = zero;
    return vm::where(hinge, vm::max(u, zero), zero) + vm::where(linear, x, zero);
  }
};
using HingeEmbeddingLossOp = PairLoss<HingeEmbeddingBase>;

LOSSEXT_DECLARE_STUB(hinge_embedding_loss_stub, PointwiseFn);

}  // namespace lossext
