// cosine_embedding_loss as a row-wise functor (lossext/rowwise.h): a row is one sample's pair of
// embeddings, x1 (the input) and x2 (the second operand); y is the row's value target (smp.v).
//   cos     = x1.x2 / sqrt((|x1|^2 + eps) (|x2|^2 + eps)),  eps = 1e-12 (ATen's EPSILON, on the squares)
//   loss    = 1 - cos where y == 1;  max(0, cos - margin) where y == -1;  0 for any other y (torch)
//   dL/dx1  = dL/dcos (x2 / (n1 n2) - cos x1 / n1^2),  n_i = sqrt(|x_i|^2 + eps);  x1 <-> x2 for dL/dx2
// dL/dcos = -1 (y == 1), 1 where y == -1 and cos >= margin (torch's clamp_min passes the gradient
// at the tie), else 0. One read of both rows gathers |x1|^2, |x2|^2 and x1.x2; pass 2 writes both
// gradients. The eps keeps zero vectors finite: cos = 0 and a finite gradient, as torch's.
// An operand broadcast along the features (D1 == 1 < D) is read D times: its squared norm is over
// its one element in torch, so the sum is scaled by inv_rep = 1/D, and so is its cos x / n^2 term
// (the D copies of its gradient are summed back by the host).
#pragma once

#include <lossext/dispatch.h>
#include <lossext/rowwise.h>

namespace lossext {

struct CosineEmbeddingParams {
  double margin;
  double inv_rep1 = 1, inv_rep2 = 1;  // 1/D for an operand broadcast along the features, else 1
};

template <class M>
struct CosineEmbeddingRow {
  static constexpr bool kPass1 = true, kOther = true, kWeighted = false;
  // Statistics: |x1|^2, |x2|^2, x1.x2. Saved for the backward: the same three (reduction none).
  static constexpr int kStats = 3, kCoefs = 3, kSaved = 3;
  static constexpr bool kSumStats = true;  // merge is addition (lossext/rowwise.h)

  M margin, inv1, inv2;
  C10_HOST_DEVICE CosineEmbeddingRow(const CosineEmbeddingParams& p, int64_t, M)
      : margin(static_cast<M>(p.margin)), inv1(static_cast<M>(p.inv_rep1)), inv2(static_cast<M>(p.inv_rep2)) {}
  C10_HOST_DEVICE static M pad() { return M(0); }

  template <class V>
  C10_HOST_DEVICE void init(V (&s)[kStats], const V&) const {
    s[0] = s[1] = s[2] = V(M(0));
  }
  template <bool kTail, int U, class V>
  C10_HOST_DEVICE void add(V (&s)[kStats], const V (&x)[U], const V (&y)[U], const V (&)[U]) const {
#pragma unroll
    for (int u = 0; u < U; ++u) {  // pad 0 (and the driver's zero-filled y) adds nothing
      s[0] = s[0] + x[u] * x[u];
      s[1] = s[1] + y[u] * y[u];
      s[2] = s[2] + x[u] * y[u];
    }
  }
  template <class V>
  C10_HOST_DEVICE void merge(V (&s)[kStats], const V (&o)[kStats]) const {
    s[0] = s[0] + o[0];
    s[1] = s[1] + o[1];
    s[2] = s[2] + o[2];
  }

  // k = {g / (n1 n2), -g cos / n1^2, -g cos / n2^2}, g = r dL/dcos; returns the row's loss.
  C10_HOST_DEVICE M coefs(const M* st, const RowSample<M>& smp, M (&k)[kCoefs]) const {
    const M eps = M(1e-12);
    const M m1 = st[0] * inv1 + eps, m2 = st[1] * inv2 + eps;
    const M denom = vm::sqrt(m1 * m2);
    const M cos = st[2] / denom;
    const bool pos = smp.v == 1.0, neg = smp.v == -1.0;
    M loss = M(0), dcos = M(0);
    if (pos) {
      loss = M(1) - cos;
      dcos = M(-1);
    } else if (neg) {
      loss = vm::max(cos - margin, M(0));  // NaN stays NaN, as clamp_min
      dcos = cos - margin >= M(0) ? M(1) : M(0);
    }
    const M g = smp.r * dcos;
    k[0] = g / denom;
    k[1] = -g * cos / m1 * inv1;
    k[2] = -g * cos / m2 * inv2;
    return loss;
  }
  C10_HOST_DEVICE void resume(const M* saved, const RowSample<M>& smp, M (&k)[kCoefs]) const {
    coefs(saved, smp, k);
  }
  C10_HOST_DEVICE M finish(const M (&s)[kStats], const RowSample<M>& smp, M (&k)[kCoefs], M* saved) const {
    for (int q = 0; q < kSaved; ++q) saved[q] = s[q];
    return coefs(s, smp, k);
  }
  template <class V>
  C10_HOST_DEVICE void grad(const V (&k)[kCoefs], const V& x, const V& y, const V&, V& gx, V& gy) const {
    gx = k[0] * y + k[1] * x;
    gy = k[0] * x + k[2] * y;
  }
  C10_HOST_DEVICE M grad_target(const M (&)[kCoefs], M) const { return M(0); }  // no class target
};

using CosineEmbeddingFn = void (*)(const RowwiseArgs&, const CosineEmbeddingParams&);
LOSSEXT_DECLARE_STUB(cosine_embedding_loss_stub, CosineEmbeddingFn);

}  // namespace lossext
