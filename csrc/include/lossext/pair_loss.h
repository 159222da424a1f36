// The pointwise functor shared by every loss of an (input, target) pair with an optional
// per-element weight: l1, mse, huber, smooth_l1, soft_margin. Safe for host C++, ISA-compiled CPU
// loops and CUDA (no ATen tensors here).
//
// A loss writes only its Base: the unweighted loss f(x, t) of one element and df/dx, df/dt
//
//   struct Base {
//     explicit C10_HOST_DEVICE Base(const double* params);
//     template <class V> C10_HOST_DEVICE V operator()(const V& x, const V& t, V& gx, V& gt) const;
//   };
//
// and PairLoss<Base> is the driver's functor (lossext/pointwise.h). Its operands are
//   x (input), t (target), w (weight), n (normalizer), c (the final loss),
// all broadcast to one shape; an absent operand is the constant 1. With weight w and the mean over
// sum(w) that torch's l1/mse use (n = sum(w), a 0-d tensor; the driver sums with scale 1):
//   loss = w f / n,   d/dx = w f_x / n,   d/dt = w f_t / n
//   d/dw = (f - k c) / n    with c = the final loss and k = numel(w) / numel(broadcast shape), so
//                           that summing the 1/k broadcast copies gives F_j / n - loss / n.
// Dividing each term (not the sum) keeps the sum in the driver's double accumulator: a float16
// sum(w f) above 65504 would overflow before the division. Without a weighted mean, n and c are
// absent and k = 0: every formula is the plain weighted one (and without weight exactly f, f_x,
// f_t: no extra rounding).
#pragma once

#include <lossext/pointwise.h>
#include <lossext/vmath.h>

namespace lossext {

// params[kPairParamK] is k; the Base's own options follow.
constexpr int kPairParamK = 0;
constexpr int kPairBaseParams = 1;

template <class Base>
struct PairLoss {
  static constexpr int kInputs = 5, kGrads = 3;
  Base base;
  double k;
  explicit C10_HOST_DEVICE PairLoss(const double* params)
      : base(params + kPairBaseParams), k(params[kPairParamK]) {}

  template <class V>
  C10_HOST_DEVICE V operator()(const V (&in)[5], V (&g)[3]) const {
    const V w = in[2], n = in[3], c = in[4];
    V fx, ft;
    const V f = base(in[0], in[1], fx, ft);
    const V wn = w / n;
    g[0] = wn * fx;
    g[1] = wn * ft;
    g[2] = (f - V(k) * c) / n;
    return wn * f;
  }
};

}  // namespace lossext
