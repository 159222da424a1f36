// triplet_margin_with_distance_loss with a user distance function: the margin on the distances the
// callable returned (autograd carries the gradients on through the callable). Per element:
//   u = margin + d_ap - d_neg,  d_neg = d_an, or min(d_an, d_swap) with swap
//   f = max(u, 0),  a = [u >= 0],  df/dd_ap = a,  df/dd_an = -a w_an,  df/dd_swap = -a w_swap
// (w_an, w_swap) = (1, 0) without swap; with swap (1, 0), (0, 1), or (1/2, 1/2) at a tie, as the
// gradient of torch.minimum; a NaN u gives a NaN loss and no gradient (clamp_min's >=).
#pragma once

#include <lossext/dispatch.h>
#include <lossext/pointwise.h>
#include <lossext/vmath.h>

namespace lossext {

struct TripletMarginDistanceOp {
  static constexpr int kInputs = 3, kGrads = 3;
  double margin;  // params[0]
  bool swap;      // params[1]: d_swap is read (else in[2] is unused)
  explicit C10_HOST_DEVICE TripletMarginDistanceOp(const double* params)
      : margin(params[0]), swap(params[1] != 0.0) {}
  template <class V>
  C10_HOST_DEVICE V operator()(const V (&in)[3], V (&g)[3]) const {
    const V dap = in[0], dan = in[1], zero(0), one(1), half(0.5);
    V dneg = dan, wan = one, wsw = zero;
    if (swap) {
      const V dsw = in[2];
      dneg = vm::min(dan, dsw);
      wan = vm::where(dan > dsw, zero, vm::where(dan == dsw, half, one));
      wsw = vm::where(dsw > dan, zero, vm::where(dan == dsw, half, one));
    }
    const V u = V(margin) + dap - dneg;
    const V a = vm::where(u >= zero, one, zero);
    g[0] = a;
    g[1] = zero - a * wan;
    g[2] = zero - a * wsw;
    return vm::where(u < zero, zero, u);  // max(u, 0) keeping a NaN u
  }
};

LOSSEXT_DECLARE_STUB(triplet_margin_with_distance_loss_stub, PointwiseFn);

}  // namespace lossext
