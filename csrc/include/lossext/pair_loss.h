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
//                           that summing the 1/k broadcast copies of w_j gives the exact
//                           d loss / d w_j = F_j / n - loss / n  (F_j: the sum of f over those copies).
// Dividing each term (not the sum) keeps the sum in the driver's double accumulator: a float16
// sum(w f) above 65504 would overflow before the division. It differs from torch's sum / sum(w)
// only when sum(w) is exactly 0 with weights of both signs (NaN here, +-inf in torch). `mode` (an option, uniform over the
// call) skips what is absent, so the unweighted loss costs nothing extra: exactly f, f_x, f_t.
#pragma once

#include <lossext/pointwise.h>
#include <lossext/vmath.h>

namespace lossext {

// Options of every pair loss: params[kPairParamMode] (PairMode), params[kPairParamK] (k, above); the
// Base's own options follow from kPairBaseParams.
enum class PairMode : int { kUnweighted = 0, kWeighted = 1, kWeightedMean = 2 };
constexpr int kPairParamMode = 0;
constexpr int kPairParamK = 1;
constexpr int kPairBaseParams = 2;

template <class Base>
struct PairLoss {
  static constexpr int kInputs = 5, kGrads = 3;
  Base base;
  PairMode mode;
  double k;
  explicit C10_HOST_DEVICE PairLoss(const double* params)
      : base(params + kPairBaseParams), mode(static_cast<PairMode>(params[kPairParamMode])),
        k(params[kPairParamK]) {}

  template <class V>
  C10_HOST_DEVICE V operator()(const V (&in)[5], V (&g)[3]) const {
    V fx, ft;
    const V f = base(in[0], in[1], fx, ft);
    if (mode == PairMode::kUnweighted) {
      g[0] = fx;
      g[1] = ft;
      g[2] = f;
      return f;
    }
    const V w = in[2];
    if (mode == PairMode::kWeighted) {
      g[0] = w * fx;
      g[1] = w * ft;
      g[2] = f;
      return w * f;
    }
    const V n = in[3], c = in[4], wn = w / n;
    g[0] = wn * fx;
    g[1] = wn * ft;
    g[2] = (f - V(k) * c) / n;
    return wn * f;
  }
};

}  // namespace lossext

namespace lossext {

// The same weighting for complex operands (opt-in, lossext/pointwise.h kComponents = 2; l1_loss):
// the Base's f is real and its derivatives have a real and an imaginary part,
//   V operator()(xr, xi, tr, ti, V& gxr, V& gxi, V& gtr, V& gti) const;
// the weight, n and c are real (the host rejects a complex weight), so d/dw has no imaginary part.
template <class Base>
struct ComplexPairLoss {
  static constexpr int kInputs = 5, kGrads = 3, kComponents = 2;
  Base base;
  PairMode mode;
  double k;
  explicit C10_HOST_DEVICE ComplexPairLoss(const double* params)
      : base(params + kPairBaseParams), mode(static_cast<PairMode>(params[kPairParamMode])),
        k(params[kPairParamK]) {}

  template <class V>
  C10_HOST_DEVICE V operator()(const V (&in)[10], V (&g)[6]) const {
    const V f = base(in[0], in[1], in[2], in[3], g[0], g[1], g[2], g[3]);
    g[5] = V(0);
    if (mode == PairMode::kUnweighted) {
      g[4] = f;
      return f;
    }
    const V w = in[4];
    if (mode == PairMode::kWeighted) {
      for (int j = 0; j < 4; ++j) g[j] = w * g[j];
      g[4] = f;
      return w * f;
    }
    const V n = in[6], c = in[8], wn = w / n;
    for (int j = 0; j < 4; ++j) g[j] = wn * g[j];
    g[4] = (f - V(k) * c) / n;
    return wn * f;
  }
};

}  // namespace lossext
