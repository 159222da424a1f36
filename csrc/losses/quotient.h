// a / b per element (an absent b is 1): with the driver's sum, the total of a tensor (the weight
// sum of a weighted mean); element-wise on two 0-d tensors, that mean's final division. Not a
// loss; a helper stub of the host code (gradient d/da = 1 / b, never requested).
#pragma once

#include <lossext/dispatch.h>
#include <lossext/pointwise.h>
#include <lossext/vmath.h>

namespace lossext {

struct QuotientOp {
  static constexpr int kInputs = 2, kGrads = 1;
  explicit C10_HOST_DEVICE QuotientOp(const double*) {}
  template <class V>
  C10_HOST_DEVICE V operator()(const V (&in)[2], V (&g)[1]) const {
    g[0] = V(1) / in[1];
    return in[0] / in[1];
  }
};

LOSSEXT_DECLARE_STUB(quotient_stub, PointwiseFn);

}  // namespace lossext
