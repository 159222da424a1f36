// multilabel_soft_margin_loss, per element; the driver's scale carries the 1/C of the class mean
// and the reduction (1/C per row for 'none' and 'sum', 1/(N C) for 'mean').
// Operands: x (logit), y (target), w (class weight; absent = 1).
//
//   loss = w * (y softplus(-x) + (1 - y) softplus(x))    (= -w [y log sigmoid(x) + (1 - y) log sigmoid(-x)])
//   d/dx = w * (sigmoid(x) - y)
//   d/dy = w * (softplus(-x) - softplus(x)) = -w x
// Kept in torch's two-term form so infinite logits give torch's inf/NaN (0 * inf where y is 0 or 1).
#pragma once

#include <lossext/dispatch.h>
#include <lossext/logistic.h>
#include <lossext/pointwise.h>
#include <lossext/vmath.h>

namespace lossext {

struct MultilabelSoftMarginOp {
  static constexpr int kInputs = 3, kGrads = 2;
  explicit C10_HOST_DEVICE MultilabelSoftMarginOp(const double*) {}
  template <class V>
  C10_HOST_DEVICE V operator()(const V (&in)[3], V (&g)[2]) const {
    const V x = in[0], y = in[1], w = in[2];
    const Logistic<V> lg(x);
    g[0] = w * (lg.sigmoid() - y);
    g[1] = w * (V(0) - x);
    return w * (y * lg.softplus_neg() + (V(1) - y) * lg.softplus());
  }
};

LOSSEXT_DECLARE_STUB(multilabel_soft_margin_loss_stub, PointwiseFn);

}  // namespace lossext
