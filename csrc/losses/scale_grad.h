// grad * grad_output, as a pointwise "loss" in kBackwardNone mode: g = x, and the driver multiplies
// by the broadcast grad_output.
#pragma once

#include <lossext/dispatch.h>
#include <lossext/pointwise.h>
#include <lossext/vmath.h>

namespace lossext {

struct ScaleGradOp {
  static constexpr int kInputs = 1, kGrads = 1;
  explicit C10_HOST_DEVICE ScaleGradOp(const double*) {}
  template <class V>
  C10_HOST_DEVICE V operator()(const V (&x)[1], V (&g)[1]) const {
    g[0] = x[0];
    return V(0);
  }
};

LOSSEXT_DECLARE_STUB(scale_grad_stub, PointwiseFn);

}  // namespace lossext
