// binary_cross_entropy, per element. Operands: x (probability), y (target), w (weight; absent = 1).
//
//   loss = w * ((y - 1) max(log(1 - x), -100) - y max(log x, -100))   (torch's -100 clamp of each log)
//   d/dx = w * (x - y) / max((1 - x) x, 1e-12f)                          (torch's eps-clamped denominator)
//   d/dy = w * (log(1 - x) - log x)       (= -w logit(x), unclamped, as torch's target backward: +-inf at 0/1)
//
// Domain: x and y in [0, 1]; NaN fails too (torch's CPU checks). Check 0 is x, check 1 is y: the CPU
// driver counts failures and raises RuntimeError after its pass. On CUDA (no host sync allowed;
// torch asserts on the device) an element with x or y outside [0, 1] gets a NaN loss and NaN
// gradients, which a reduction carries into the result.
#pragma once

#include <lossext/dispatch.h>
#include <lossext/logistic.h>
#include <lossext/pointwise.h>
#include <lossext/vmath.h>

#include <cmath>

namespace lossext {

struct BinaryCrossEntropyOp {
  static constexpr int kInputs = 3, kGrads = 2, kChecks = 2;
  explicit C10_HOST_DEVICE BinaryCrossEntropyOp(const double*) {}

  static const char* check_message(int c) {
    return c == 0 ? "binary_cross_entropy: all elements of input should be between 0 and 1"
                  : "binary_cross_entropy: all elements of target should be between 0 and 1";
  }

  template <class V>
  C10_HOST_DEVICE V operator()(const V (&in)[3], V (&g)[2], V (&bad)[2]) const {
    const V x = in[0], y = in[1], w = in[2];
    const V zero(0), one(1), nan(NAN);
    const auto x_ok = (x >= zero) & (x <= one);  // false for NaN
    const auto y_ok = (y >= zero) & (y <= one);
    bad[0] = vm::where(x_ok, zero, one);
    bad[1] = vm::where(y_ok, zero, one);
    const auto ok = x_ok & y_ok;
    const V u = one - x;
    const V log_x = log_nonneg(x);
    const V log_u = log1p_from(zero - x, u, V(2) - u);  // log1p(-x), as torch, with one log
    // torch's EPSILON is a float 1e-12 (also for double inputs).
    const V den = vm::max(u * x, V(static_cast<float>(1e-12f)));
    g[0] = vm::where(ok, w * (x - y) * recip_pos(den), nan);
    g[1] = vm::where(ok, w * (log_u - log_x), nan);
    const V clamp(-100);
    return vm::where(ok, w * ((y - one) * vm::max(log_u, clamp) - y * vm::max(log_x, clamp)), nan);
  }
};

LOSSEXT_DECLARE_STUB(binary_cross_entropy_stub, PointwiseFn);

}  // namespace lossext
