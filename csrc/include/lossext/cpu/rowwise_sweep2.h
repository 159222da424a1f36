// The CPU row-wise driver's second sweep (ISA-compiled code only): for a functor with kStats2 > 0
// (lossext/rowwise.h; focal_loss with label smoothing), the statistics that need pass 1's result,
// one more read of the row after finish, then finish2. Plain sums: the vector lanes folded with
// ATen's shuffle reduction, the segments of a split row (and the classes of a spatial block) added
// in a fixed order, so the bits do not depend on the thread count. D is lossext/cpu/rowwise.h's
// RowDriver; these are its members in all but name, kept here to keep that file short.
#pragma once

#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <lossext/cpu/rowwise_prepass.h>
#include <lossext/cpu/vec.h>
#include <lossext/rowwise.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

namespace lossext::CPU_CAPABILITY {

// The sums of add2 over the row's elements [j0, j1), with finish's coefficients kv.
template <class D, class T, class V, class M>
void sweep2_segment(const D& d, const T* x, const V (&kv)[D::kK], int64_t j0, int64_t j1, M (&out)[D::kS2n]) {
  using F = typename D::Functor;
  constexpr int64_t L = D::L;
  constexpr int U = D::U;
  V vs[D::kS2n];
  for (int q = 0; q < D::kS2n; ++q) vs[q] = V(M(0));
  int64_t j = j0;
  for (; j + U * L <= j1; j += U * L) {
    V xs[U], ws[U];
    for (int u = 0; u < U; ++u) {
      xs[u] = vload(x + j + u * L, L);
      ws[u] = F::kWeighted ? vload(d.wv.data + j + u * L, L) : V(M(1));
    }
    d.f.template add2<U>(vs, kv, xs, ws);
  }
  for (; j < j1; j += L) {
    const int64_t cnt = std::min<int64_t>(L, j1 - j);
    V xs[1] = {vload(x + j, cnt)}, ws[1] = {d.wload(j, cnt)};
    if (cnt < L) {  // only the row's lanes count (unused ones may add inf or NaN: discarded)
      V part[D::kS2n];
      for (int q = 0; q < D::kS2n; ++q) part[q] = V(M(0));
      d.f.template add2<1>(part, kv, xs, ws);
      for (int q = 0; q < D::kS2n; ++q) vs[q] = vs[q] + V::set(V(M(0)), part[q], cnt);
    } else {
      d.f.template add2<1>(vs, kv, xs, ws);
    }
  }
  for (int q = 0; q < D::kS2n; ++q) out[q] = at::vec::vec_reduce_all<M>([](V a, V b) { return a + b; }, vs[q]);
}

// Rows layout: the row's second sweep (per segment in parallel when split) and finish2; returns
// the row's final loss and completes k and the saved statistics of sample i.
template <class D, class T, class M, class S>
M row_second_sweep(const D& d, const T* x, const S& smp, M (&k)[D::kK], int64_t i, bool split) {
  using V = typename D::V;
  V kv[D::kK];
  for (int q = 0; q < D::kK; ++q) kv[q] = V(k[q]);
  M s2[D::kS2n] = {};
  if (!split) {
    sweep2_segment(d, x, kv, 0, d.a.C, s2);
  } else {
    std::vector<std::array<M, D::kS2n>> part(ceil_div(d.a.C, kRowChunkElems));
    d.for_segments(split, [&](int64_t j0, int64_t j1) {
      M out[D::kS2n];
      sweep2_segment(d, x, kv, j0, j1, out);
      std::copy(out, out + D::kS2n, part[j0 / kRowChunkElems].begin());
    });
    for (const auto& pq : part)
      for (int q = 0; q < D::kS2n; ++q) s2[q] += pq[q];
  }
  return d.f.finish2(s2, smp, k, d.saved_at(i));
}

// Spatial layout: the classes walked once more with every lane's k (kl), then finish2 for each
// active row of the block: its final loss (lossl), k (kl) and saved statistics.
template <class D, class T, class M, class S, int64_t L>
void block_second_sweep(const D& d, const T* x, int64_t xc, int64_t cnt, M (&kl)[D::kK][L],
                        const ClassSample (&cs)[L], const S (&smp)[L], M (&lossl)[L], int64_t i0) {
  using F = typename D::Functor;
  using V = typename D::V;
  constexpr int U = D::U;
  V kv[D::kK], vs[D::kS2n];
  for (int q = 0; q < D::kK; ++q) kv[q] = V::loadu(kl[q]);
  for (int q = 0; q < D::kS2n; ++q) vs[q] = V(M(0));
  const int64_t C = d.a.C;
  int64_t c = 0;
  for (; c + U <= C; c += U) {
    V xs[U], ws[U];
    for (int u = 0; u < U; ++u) {
      xs[u] = vload(x + (c + u) * xc, cnt);
      ws[u] = V(F::kWeighted ? d.wv.data[c + u] : M(1));
    }
    d.f.template add2<U>(vs, kv, xs, ws);
  }
  for (; c < C; ++c) {
    V xs[1] = {vload(x + c * xc, cnt)}, ws[1] = {V(F::kWeighted ? d.wv.data[c] : M(1))};
    d.f.template add2<1>(vs, kv, xs, ws);
  }
  alignas(64) M s2l[D::kS2n][L];
  for (int q = 0; q < D::kS2n; ++q) vs[q].store(s2l[q]);
  for (int64_t j = 0; j < cnt; ++j) {
    if (!cs[j].active) continue;
    M s2[D::kS2n], k[D::kK];
    for (int q = 0; q < D::kS2n; ++q) s2[q] = s2l[q][j];
    for (int q = 0; q < D::kK; ++q) k[q] = kl[q][j];
    lossl[j] = d.f.finish2(s2, smp[j], k, d.saved_at(i0 + j));
    for (int q = 0; q < D::kK; ++q) kl[q][j] = k[q];
  }
}

}  // namespace lossext::CPU_CAPABILITY
