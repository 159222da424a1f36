// sigmoid_focal_loss (torchvision's formula), per element, in two forms on the pointwise driver.
//
// Shared math (SigmoidFocalMath), for x (logit) and t (the float target, or the one-hot [c == t]):
//   p = sigmoid(x), pn = 1 - p = sigmoid(-x) (both computed directly, no 1 - p cancellation)
//   ce = (1 - t) x + softplus(-x)  (BCE with logits),  q = 1 - p_t = p (1 - t) + pn t
//   a  = alpha t + (1 - alpha)(1 - t)  (1 if alpha < 0)
//   l     = a ce q^g
//   dl/dx = a [ (p - t) q^g + g ce q^(g-1) p pn (1 - 2t) ]
//   dl/dt = a [ -x q^g + g ce q^(g-1) (pn - p) ] + (2 alpha - 1) ce q^g
// At q = 0 (p_t = 1) with g < 1, q^(g-1) is infinite: the x term's limit is 0 (p pn / q -> 1 and
// q^g -> 0), so it is taken as 0 there (torchvision's autograd gives NaN: inf * 0); the t term is
// -inf there, as torchvision's. g = 0, 1, 2 are exact branches (0^0 = 1, no 0 * -inf; at g = 0 the
// g terms are exactly 0 even where ce is infinite).
//
// SigmoidFocalOp (float targets): operands x, t, w (a weight broadcast to x; absent = 1) and
// nrm (the one-element normalizer; absent = 1): loss = w l / nrm, gradients likewise scaled.
//
// SigmoidFocalIndexOp (class-index targets): operands x, t (the row's class index, broadcast along
// the class dim), c (the element's class, a broadcast (C,) index), w (per class), nrm, den (the
// mean's row count, a 0-d float64 device tensor; absent for none/sum). The one-hot is [t == c]:
// never materialised. Why a pointwise functor that reads its row's index rather than a row functor
// on the row-wise driver: 'none' returns the elementwise loss (the row-wise driver's 'none' is one
// value per row), every element's loss and gradient are independent given its index (no row
// statistic is needed, so one read and one write per element, as the float form), and the driver's
// tiles / vector lanes stay fully used at C = 80 or C = 1 alike. What is row-wise in it (validation
// of the indices with IndexError on the CPU, and the mean's count of non-ignored rows on the device
// without a host sync) is the row-wise driver's target pre-pass, run on the target alone.
//   ignored (t == ignore_index): loss 0 and gradient 0 (the mean is NaN when its count is 0: 0/0, as
//   torch's mean of nothing; the gradient stays 0 then, as cross_entropy's); t == C (background):
//   all negatives; t < 0 or t > C otherwise (invalid, reachable on CUDA only, where no host sync
//   can raise): NaN loss and gradient.
//   loss = w_c l(x, [t == c]) / (nrm (den C)) with den C the number of elements of the kept rows.
#pragma once

#include <lossext/dispatch.h>
#include <lossext/logistic.h>
#include <lossext/pointwise.h>
#include <lossext/vmath.h>

#include <limits>

namespace lossext {

struct SigmoidFocalMath {
  double alpha, gamma;
  int gk;  // 0: gamma = 0, 1: gamma = 1, 2: gamma = 2, 3: any other gamma
  C10_HOST_DEVICE SigmoidFocalMath(double a, double g)
      : alpha(a), gamma(g), gk(g == 0 ? 0 : g == 1 ? 1 : g == 2 ? 2 : 3) {}

  // l (above); gx = dl/dx; gt = dl/dt when kTarget.
  template <bool kTarget, class V>
  C10_HOST_DEVICE V eval(const V& x, const V& t, V& gx, V& gt) const {
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
    // g = 0: q^0 is the constant 1, its derivative term exactly 0 (not 0 * ce: inf at an infinite
    // logit, as torch's pow backward, which returns zeros for a zero exponent).
    const V gce = gk == 0 ? zero : V(gamma) * ce * qg1;
    const V tx = vm::where(q > zero, gce * p * pn * (one - V(2) * t), zero);
    gx = a * ((p - t) * qg + tx);
    const V l = ce * qg;
    if constexpr (kTarget) {
      const V g1 = a * ((zero - x) * qg + gce * (pn - p));
      gt = alpha < 0 ? g1 : g1 + V(2 * alpha - 1) * l;
    }
    return a * l;
  }
};

struct SigmoidFocalOp {
  static constexpr int kInputs = 4, kGrads = 2;
  SigmoidFocalMath m;
  bool has_nrm;
  explicit C10_HOST_DEVICE SigmoidFocalOp(const double* p) : m(p[0], p[1]), has_nrm(p[2] != 0) {}

  template <class V>
  C10_HOST_DEVICE V operator()(const V (&in)[4], V (&g)[2]) const {
    const V k = has_nrm ? in[2] / in[3] : in[2];  // w / nrm
    V gx, gt;
    const V l = m.eval<true>(in[0], in[1], gx, gt);
    g[0] = k * gx;
    g[1] = k * gt;
    return k * l;
  }
};

struct SigmoidFocalIndexOp {
  static constexpr int kInputs = 6, kGrads = 1;
  SigmoidFocalMath m;
  double ignore_index, classes;
  bool has_nrm, mean, invalid;  // invalid: an index may be out of range (CUDA; the CPU raised before)
  explicit C10_HOST_DEVICE SigmoidFocalIndexOp(const double* p)
      : m(p[0], p[1]), ignore_index(p[2]), classes(p[3]), has_nrm(p[4] != 0), mean(p[5] != 0), invalid(p[6] != 0) {}

  template <class V>
  C10_HOST_DEVICE V operator()(const V (&in)[6], V (&g)[1]) const {
    const V t = in[1], zero(0), one(1);
    const V y = vm::where(t == in[2], one, zero);  // [t == c]; t == C (background) matches no class
    V k = has_nrm ? in[3] / in[4] : in[3];          // w_c / nrm
    if (mean) k = k / (in[5] * V(classes));         // / (kept rows x C)
    const V dead = zero * k;  // an ignored element's loss: 0, or NaN when the mean's count is 0 (0 / 0)
    if (invalid) k = k + vm::where((t < zero) | (t > V(classes)), V(std::numeric_limits<double>::quiet_NaN()), zero);
    const auto ignored = t == V(ignore_index);
    V gx, unused;
    const V l = m.eval<false>(in[0], y, gx, unused);
    g[0] = vm::where(ignored, zero, k * gx);  // 0 even then, as cross_entropy's (no NaN step on an empty batch)
    return vm::where(ignored, dead, k * l);
  }
};

LOSSEXT_DECLARE_STUB(sigmoid_focal_loss_stub, PointwiseFn);
LOSSEXT_DECLARE_STUB(sigmoid_focal_loss_index_stub, PointwiseFn);

}  // namespace lossext
