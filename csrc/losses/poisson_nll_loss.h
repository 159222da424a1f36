// poisson_nll_loss, per element. Operands: x (input), t (target). Params: log_input, full, eps.
//
//   log_input: loss = e^x - t x                 d/dx = e^x - t          d/dt = -x
//   else:      loss = x - t log(x + eps)        d/dx = 1 - t / (x + eps) d/dt = -log(x + eps)
//   full adds the Stirling term where t > 1 (torch masks t <= 1 to 0, so NaN targets stay NaN):
//              s = t log t - t + 0.5 log(2 pi t)  d/dt = log t + 0.5 / t
// torch differentiates the masked term as written, so d/dt of the masked part is 0 * log t (+ 0/t):
// NaN for t <= 0, 0 for 0 < t <= 1; we reproduce that, and t / t - 1 reproduces its NaN at t = inf.
#pragma once

#include <lossext/dispatch.h>
#include <lossext/pointwise.h>
#include <lossext/vmath.h>

namespace lossext {

struct PoissonNLLOp {
  static constexpr int kInputs = 2, kGrads = 2;
  bool log_input, full;
  double eps;
  // params: {log_input, full, eps}
  explicit C10_HOST_DEVICE PoissonNLLOp(const double* p) : log_input(p[0] != 0), full(p[1] != 0), eps(p[2]) {}
  template <class V>
  C10_HOST_DEVICE V operator()(const V (&in)[2], V (&g)[2]) const {
    const V x = in[0], t = in[1];
    const V one(1), zero(0);
    V loss;
    if (log_input) {
      const V e = vm::exp(x);
      loss = e - t * x;
      g[0] = e - t;
      g[1] = zero - x;
    } else {
      const V xe = x + V(eps);
      const V l = vm::log(xe);
      loss = x - t * l;
      g[0] = one - t / xe;
      g[1] = zero - l;
    }
    if (full) {
      const V half(0.5);
      const V lt = vm::log(t);
      // 0.5 log(2 pi t) as 0.5 (log(2 pi) + log t): one log fewer (this loop is compute-bound).
      const V s = t * lt - t + half * (V(1.8378770664093453) + lt);
      const V masked = t <= one;
      loss = loss + vm::where(masked, zero, s);
      g[1] = g[1] + vm::where(masked, zero * lt, lt + t / t - one + half / t);
    }
    return loss;
  }
};

LOSSEXT_DECLARE_STUB(poisson_nll_loss_stub, PointwiseFn);

}  // namespace lossext
