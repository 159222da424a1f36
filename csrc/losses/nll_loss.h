// nll_loss as a row-wise functor (lossext/rowwise.h): the input holds log-probabilities and the
// loss reads one element per row, so there is no pass 1 (a forward without gradient reads x_t only).
//   loss    = -w_t x_t
//   dL/dx_c = -r w_t [c == t]
// The driver handles ignore_index (loss 0, zero row), class weights and the mean's denominator.
#pragma once

#include <lossext/dispatch.h>
#include <lossext/rowwise.h>

namespace lossext {

struct NllLossParams {};

template <class M>
struct NllLossRow {
  static constexpr bool kPass1 = false, kOther = false, kWeighted = false;
  static constexpr int kStats = 1, kCoefs = 2, kSaved = 0;

  C10_HOST_DEVICE NllLossRow(const NllLossParams&, int64_t, M) {}
  C10_HOST_DEVICE static M pad() { return M(0); }
  template <class V>
  C10_HOST_DEVICE void init(V (&)[kStats], const V&) const {}
  template <bool kTail, int U, class V>
  C10_HOST_DEVICE void add(V (&)[kStats], const V (&)[U], const V (&)[U], const V (&)[U]) const {}
  template <class V>
  C10_HOST_DEVICE void merge(V (&)[kStats], const V (&)[kStats]) const {}

  // k = {dL/dx_t, the other classes' gradient}: 0, or NaN for an invalid target on CUDA (wt NaN).
  C10_HOST_DEVICE void resume(const M*, const RowSample<M>& smp, M (&k)[kCoefs]) const {
    k[0] = -smp.r * smp.wt;
    k[1] = smp.wt - smp.wt;
  }
  C10_HOST_DEVICE M finish(const M (&)[kStats], const RowSample<M>& smp, M (&k)[kCoefs], M* saved) const {
    resume(saved, smp, k);
    return -smp.wt * smp.xt;
  }
  template <class V>
  C10_HOST_DEVICE void grad(const V (&k)[kCoefs], const V&, const V&, const V&, V& gx, V&) const {
    gx = k[1];
  }
  C10_HOST_DEVICE M grad_target(const M (&k)[kCoefs], M) const { return k[0]; }
};

using NllLossFn = void (*)(const RowwiseArgs&, const NllLossParams&);
LOSSEXT_DECLARE_STUB(nll_loss_stub, NllLossFn);

}  // namespace lossext
