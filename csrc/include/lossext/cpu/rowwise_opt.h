// The CPU row-wise driver's opt-in paths (ISA-compiled code only; contract in lossext/rowwise.h).
// D is lossext/cpu/rowwise.h's RowDriver; these are its members in all but name, kept here to keep
// that file short.
//   kStats2 > 0 (focal_loss with label smoothing): the statistics that need pass 1's result, one
//     more read of the row after finish, then finish2. Plain sums: the vector lanes folded with
//     ATen's shuffle reduction, the segments of a split row (and the classes of a spatial block)
//     added in a fixed order, so the bits do not depend on the thread count.
//   kLaneFinish (the spatial layout): the block's rows finished together in the vector lanes.
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

// Spatial layout, forward, F::kLaneFinish: the block's L rows (one per lane) finished at once by
// finish_lanes instead of finish per lane in scalar code (at C ~ 20 classes the scalar finish, with
// its libm calls, was half of focal_loss's time). Fills the loss (lossl), k (kl) and the saved
// statistics of each row; inactive rows get loss 0 and saved 0 (their gradient is zeroed later).
template <class D, class M, class S, int64_t L>
void block_finish_lanes(const D& d, int64_t cnt, const M (&stl)[D::kS][L], const ClassSample (&cs)[L],
                        const S (&smp)[L], M (&kl)[D::kK][L], M (&lossl)[L], int64_t i0) {
  using F = typename D::Functor;
  using V = typename D::V;
  alignas(64) M wt[L] = {}, xt[L] = {}, r[L] = {};
  int64_t t[L];
  for (int64_t j = 0; j < L; ++j) {
    const bool on = j < cnt && cs[j].active;
    if (on) {
      wt[j] = smp[j].wt;
      xt[j] = smp[j].xt;
      r[j] = smp[j].r;
    }
    t[j] = on ? smp[j].t : -1;
  }
  const RowLanes<V> ln{V::loadu(wt), V::loadu(xt), V::loadu(r), t};
  V s[D::kS], k[D::kK], sv[F::kSaved];
  for (int q = 0; q < D::kS; ++q) s[q] = V::loadu(stl[q]);
  const V loss = d.f.finish_lanes(s, ln, k, sv);
  alignas(64) M lb[L], svb[F::kSaved][L];
  loss.store(lb);
  for (int q = 0; q < F::kSaved; ++q) sv[q].store(svb[q]);
  for (int q = 0; q < D::kK; ++q) k[q].store(kl[q]);
  for (int64_t j = 0; j < cnt; ++j) {
    M* sp = d.saved_at(i0 + j);
    const bool on = cs[j].active;
    lossl[j] = on ? lb[j] : M(0);
    for (int q = 0; q < F::kSaved; ++q) sp[q] = on ? svb[q][j] : M(0);
  }
}

}  // namespace lossext::CPU_CAPABILITY
