// margin_ranking_loss, per element (u = margin - y (x1 - x2), torch's -y (x1 - x2) + margin):
//   f = max(u, 0),  a = [u >= 0],  df/dx1 = -a y,  df/dx2 = a y,  df/dy = a (x2 - x1)
// As torch's clamp_min: a NaN u gives a NaN loss, and the gradient passes at u == 0 but not for a
// NaN u. The indicator multiplies (as torch's chain rule does), so a NaN y still gives NaN dx.
#pragma once

#include <lossext/dispatch.h>
#include <lossext/pointwise.h>
#include <lossext/vmath.h>

namespace lossext {

struct MarginRankingOp {
  static constexpr int kInputs = 3, kGrads = 3;
  double margin;  // params[0]
  explicit C10_HOST_DEVICE MarginRankingOp(const double* params) : margin(params[0]) {}
  template <class V>
  C10_HOST_DEVICE V operator()(const V (&in)[3], V (&g)[3]) const {
    const V x1 = in[0], x2 = in[1], y = in[2], zero(0);
    const V u = V(margin) - y * (x1 - x2);
    const V a = vm::where(u >= zero, V(1), zero);
    g[0] = zero - a * y;
    g[1] = a * y;
    g[2] = a * (x2 - x1);
    return vm::where(u < zero, zero, u);  // max(u, 0) keeping a NaN u
  }
};

LOSSEXT_DECLARE_STUB(margin_ranking_loss_stub, PointwiseFn);

}  // namespace lossext
