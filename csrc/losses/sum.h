// The sum of a tensor through the pointwise driver (loss = x, summed deterministically in double):
// the normalizer sum(weight) of l1/mse's weighted mean. Not a loss; a helper stub of the host code
// (gradient 1, never requested).
#pragma once

#include <lossext/dispatch.h>
#include <lossext/pointwise.h>
#include <lossext/vmath.h>

namespace lossext {

struct SumOp {
  static constexpr int kInputs = 1, kGrads = 1;
  explicit C10_HOST_DEVICE SumOp(const double*) {}
  template <class V>
  C10_HOST_DEVICE V operator()(const V (&in)[1], V (&g)[1]) const {
    g[0] = V(1);
    return in[0];
  }
};

LOSSEXT_DECLARE_STUB(sum_stub, PointwiseFn);

}  // namespace lossext
