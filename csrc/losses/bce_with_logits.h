// binary_cross_entropy_with_logits, per element. Operands: x (logit), y (target), w (weight),
// p (pos_weight); absent w and p are 1, which reduces every formula to the unweighted one.
//
//   loss = w * ((1 - y) x + (1 + (p - 1) y) softplus(-x)),  softplus(-x) = max(-x, 0) + log1p(e^-|x|)
//   d/dx = w * ((p y + 1 - y) sigmoid(x) - p y)
//   d/dy = w * (p softplus(-x) - softplus(x)),  or w * -x without pos_weight (params[0] == 0)
// The same forms as torch, so infinite logits give the same inf/NaN (d/dy at x = -inf is inf, not
// the (p - 1) softplus(-x) - x form's 0 * inf).
#pragma once

#include <lossext/dispatch.h>
#include <lossext/logistic.h>
#include <lossext/pointwise.h>
#include <lossext/vmath.h>

namespace lossext {

struct BCEWithLogitsOp {
  static constexpr int kInputs = 4, kGrads = 2;
  bool has_pos_weight;
  explicit C10_HOST_DEVICE BCEWithLogitsOp(const double* params) : has_pos_weight(params[0] != 0) {}
  template <class V>
  C10_HOST_DEVICE V operator()(const V (&in)[4], V (&g)[2]) const {
    const V x = in[0], y = in[1], w = in[2], p = in[3];
    const V one(1);
    const Logistic<V> lg(x);
    const V sp = lg.softplus_neg();
    const V py = p * y;
    g[0] = w * ((py + one - y) * lg.sigmoid() - py);
    g[1] = has_pos_weight ? w * (p * sp - lg.softplus()) : w * (V(0) - x);
    return w * ((one - y) * x + (py - y + one) * sp);
  }
};

LOSSEXT_DECLARE_STUB(bce_with_logits_stub, PointwiseFn);

}  // namespace lossext
