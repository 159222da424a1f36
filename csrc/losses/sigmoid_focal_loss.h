// sigmoid_focal_loss (torchvision's formula), per element. Operands: x (logit), t (float target),
// w (an optional weight broadcast to x; absent = 1). Params: alpha (< 0: no weighting), gamma.
//
//   p = sigmoid(x), pn = 1 - p = sigmoid(-x) (both computed directly, no 1 - p cancellation)
//   ce = (1 - t) x + softplus(-x)  (BCE with logits),  q = 1 - p_t = p (1 - t) + pn t
//   a  = alpha t + (1 - alpha)(1 - t)  (1 if alpha < 0)
//   loss  = w a ce q^g
//   dL/dx = w a [ (p - t) q^g + g ce q^(g-1) p pn (1 - 2t) ]
//   dL/dt = w a [ -x q^g + g ce q^(g-1) (pn - p) ] + w (2 alpha - 1) ce q^g
// At q = 0 (p_t = 1) with g < 1, q^(g-1) is infinite: the x term's limit is 0 (p pn / q -> 1 and
// q^g -> 0), so it is taken as 0 there (torchvision's autograd gives NaN: inf * 0); the t term is
// -inf there, as torchvision's. g = 0, 1, 2 are exact branches (0^0 = 1, no 0 * -inf).
#pragma once

#include <lossext/dispatch.h>
#include <lossext/logistic.h>
#include <lossext/pointwise.h>
#include <lossext/vmath.h>

namespace lossext {

struct SigmoidFocalOp {
  static constexpr int kInputs = 3, kGrads = 2;
  double alpha, gamma;
  int gk;  // 0: gamma = 0, 1: gamma = 1, 2: gamma = 2, 3: any other gamma
  explicit C10_HOST_DEVICE SigmoidFocalOp(const double* p)
      : alpha(p[0]), gamma(p[1]), gk(p[1] == 0 ? 0 : p[1] == 1 ? 1 : p[1] == 2 ? 2 : 3) {}

  template <class V>
  C10_HOST_DEVICE V operator()(const V (&in)[3], V (&g)[2]) const {
    const V x = in[0], t = in[1], w = in[2];
    const V one(1), zero(0);
    const Logistic<V> lg(x);
    const V p = lg.sigmoid();
    const V pn = vm::where(x >= zero, lg.e * lg.r, lg.r);  // sigmoid(-x)
    const V ce = (one - t) * x + lg.softplus_neg();
    const V q = p * (one - t) + pn * t;
    V qg, qg1;  // q^g, q^(g-1)
    if (gk == 0) {
      qg = one;
      qg1 = zero;  // multiplied by g = 0
    } else if (gk == 1) {
      qg = q;
      qg1 = one;
    } else if (gk == 2) {
      qg = q * q;
      qg1 = q;
    } else {
      const V lq = vm::log(q);
      qg = vm::exp(V(gamma) * lq);
      qg1 = vm::exp(V(gamma - 1) * lq);
    }
    const V a = alpha < 0 ? one : V(alpha) * t + V(1 - alpha) * (one - t);
    const V wa = w * a;
    const V gce = V(gamma) * ce * qg1;
    const V tx = vm::where(q > zero, gce * p * pn * (one - V(2) * t), zero);
    g[0] = wa * ((p - t) * qg + tx);
    const V gt = wa * ((zero - x) * qg + gce * (pn - p));
    const V l = ce * qg;
    g[1] = alpha < 0 ? gt : gt + w * V(2 * alpha - 1) * l;
    return wa * l;
  }
};

LOSSEXT_DECLARE_STUB(sigmoid_focal_loss_stub, PointwiseFn);

}  // namespace lossext
