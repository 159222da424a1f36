// l1_loss, per element (d = x - t):  f = |d|,  df/dx = sign(d) (0 at d = 0, as torch),  df/dt = -df/dx
// Complex operands (ComplexL1Base):  f = |d| (real),  df/d(re x) + i df/d(im x) = sgn(d) = d / |d|
// (0 at d = 0),  d/dt = -sgn(d)  (torch's gradient convention for a real loss of a complex input).
#pragma once

#include <lossext/dispatch.h>
#include <lossext/pair_loss.h>

namespace lossext {

struct L1Base {
  explicit C10_HOST_DEVICE L1Base(const double*) {}
  template <class V>
  C10_HOST_DEVICE V operator()(const V& x, const V& t, V& gx, V& gt) const {
    const V d = x - t;
    gx = vm::sign(d);
    gt = V(0) - gx;
    return vm::abs(d);
  }
};
using L1LossOp = PairLoss<L1Base>;

struct ComplexL1Base {
  explicit C10_HOST_DEVICE ComplexL1Base(const double*) {}
  template <class V>
  C10_HOST_DEVICE V operator()(const V& xr, const V& xi, const V& tr, const V& ti, V& gxr, V& gxi, V& gtr,
                               V& gti) const {
    const V dr = xr - tr, di = xi - ti;
    // |d| as hypot: scaled by m = max(|re d|, |im d|) so that neither square overflows or
    // underflows; an infinite part gives inf (NaN propagates through m).
    const V m = vm::max(vm::abs(dr), vm::abs(di));
    const V ms = vm::where(m > V(0), m, V(1));
    const V qr = dr / ms, qi = di / ms;
    const V s = vm::sqrt(qr * qr + qi * qi);
    const V inf(INFINITY);
    const auto huge = m == inf;
    const V a = vm::where(huge, inf, m * s);
    // sgn(d) = d / |d| = q / s (finite where |d| itself overflows): 0 at d = 0; NaN for an infinite
    // |d| (torch's inf / inf), as for NaN.
    const auto zero = m == V(0);
    gxr = vm::where(zero, V(0), vm::where(huge, V(NAN), qr / s));
    gxi = vm::where(zero, V(0), vm::where(huge, V(NAN), qi / s));
    gtr = V(0) - gxr;
    gti = V(0) - gxi;
    return a;
  }
};
using L1ComplexLossOp = ComplexPairLoss<ComplexL1Base>;

LOSSEXT_DECLARE_STUB(l1_loss_stub, PointwiseFn);
LOSSEXT_DECLARE_STUB(l1_loss_complex_stub, PointwiseFn);

}  // namespace lossext
