// kl_div, per element. Operands: x (input, log-probabilities), t (target). Params: log_target, and
// a factor for loss and gradients (1, or 1/batch for an unreduced loss with F.kl_div's batch
// division; reduced losses fold it into the driver's scale instead).
//
//   log_target: loss = e^t (t - x)           d/dx = -e^t   d/dt = e^t (t - x + 1)
//   else:       loss = xlogy(t, t) - t x     d/dx = -t     d/dt = xlogy(t != 0, t) + t / t - x
// xlogy(t, t) is 0 at t = 0 (a zero target contributes nothing). Its target gradient is torch's
// autograd formula for xlogy in both arguments: log t where t != 0, plus t / t, so NaN at t = 0
// exactly as torch gives it.
#pragma once

#include <lossext/dispatch.h>
#include <lossext/pointwise.h>
#include <lossext/vmath.h>

namespace lossext {

struct KLDivOp {
  static constexpr int kInputs = 2, kGrads = 2;
  bool log_target;
  double factor;
  // params: {log_target, factor}
  explicit C10_HOST_DEVICE KLDivOp(const double* p) : log_target(p[0] != 0), factor(p[1]) {}
  template <class V>
  C10_HOST_DEVICE V operator()(const V (&in)[2], V (&g)[2]) const {
    const V x = in[0], t = in[1];
    const V zero(0), f(factor);
    if (log_target) {
      const V e = vm::exp(t);
      const V d = t - x;
      g[0] = (zero - e) * f;
      g[1] = (e * d + e) * f;
      return e * d * f;
    }
    const V lt = vm::log(t);
    const V t0 = t == zero;
    g[0] = (zero - t) * f;
    g[1] = (vm::where(t0, zero, lt) + t / t - x) * f;
    return (vm::where(t0, zero, t * lt) - t * x) * f;
  }
};

LOSSEXT_DECLARE_STUB(kl_div_stub, PointwiseFn);

}  // namespace lossext
