// The CPU row-wise driver (ISA-compiled code only; contract in lossext/rowwise.h). A loss's CPU
// file is one line: rowwise_cpu<T, Functor<math_t<T>>>(args, params, name).
//
// Rows layout (class dim contiguous): one row per step; pass 1 reads the row in groups of U
// vectors, the lanes are folded into the row's statistics, `finish` gives the loss and the
// gradient coefficients, and pass 2 sweeps the row again (still in L2) and writes the final,
// reduction-scaled gradient once. Long rows of a small batch are cut into fixed segments whose
// passes run in parallel (their statistics merged in segment order).
// Spatial layout (class dim strided, positions contiguous): the lanes hold L consecutive positions,
// i.e. L different rows, and both passes walk the classes with plain vector loads.
// Work is cut into fixed chunks of rows / position blocks / segments that depend on the sizes only
// (never on the thread count); losses are summed per chunk in double and the chunks added in order:
// the same bits for any number of threads.
#pragma once

#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <c10/util/Exception.h>
#include <lossext/cpu/reduce.h>
#include <lossext/cpu/rowwise_prepass.h>
#include <lossext/cpu/rowwise_opt.h>
#include <lossext/cpu/vec.h>
#include <lossext/rowwise.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

namespace lossext::CPU_CAPABILITY {

template <class T, class F>
struct RowDriver {
  using Functor = F;
  using M = math_t<T>;
  using V = Vectorized<M>;
  static constexpr int64_t L = V::size();
  static constexpr int U = 4;  // vectors (rows) / classes (spatial) per pass-1 step
  static constexpr int kS = F::kStats, kK = F::kCoefs;
  static constexpr bool kZ = RowThird<F>::value;  // a third operand (lossext/rowwise.h)
  static constexpr int kS2 = RowStats2<F>::value;  // second-sweep statistics (lossext/rowwise.h)
  static constexpr int kS2n = kS2 > 0 ? kS2 : 1;

  const RowwiseArgs& a;
  const char* op;
  const WeightView<T> wv;
  const F f;
  const bool fwd, none;
  const int64_t sv = F::kSaved;  // saved statistics per row

  template <class P>
  RowDriver(const RowwiseArgs& args, const P& params, const char* name)
      : a(args), op(name), wv(args), f(params, args.C, wv.total), fwd(args.mode == RowMode::kForward),
        none(args.reduction == Reduction::None) {}

  M* saved_at(int64_t i) const { return static_cast<M*>(a.saved) + i * sv; }

  // The gradient scale of sample (n, s): inv, times grad_output in the backward.
  M scale_of(int64_t n, int64_t s, double inv) const {
    if (fwd) return static_cast<M>(inv);
    const T* go = static_cast<const T*>(a.grad_output);
    const T g = none ? go[n * a.gN + s * a.gS] : go[0];
    return static_cast<M>(static_cast<double>(g) * inv);
  }

  // Weights of classes [j, j + cnt) as a vector: w (1 unweighted), 0 in the lanes past cnt.
  V wload(int64_t j, int64_t cnt) const {
    if (wv.data) return vload(wv.data + j, cnt);
    return cnt == L ? V(M(1)) : vfirst(V(M(0)), V(M(1)), cnt);
  }

  // The functor's add and grad, with the third operand where F takes one.
  template <bool kTail, int K>
  void add(V (&s)[kS], const V (&x)[K], const V (&y)[K], const V (&z)[K], const V (&w)[K]) const {
    if constexpr (kZ) f.template add<kTail, K>(s, x, y, z, w); else f.template add<kTail, K>(s, x, y, w);
  }
  void grad(const V (&k)[kK], const V& x, const V& y, const V& z, const V& w, V& gx, V& gy, V& gz) const {
    if constexpr (kZ) f.grad(k, x, y, z, w, gx, gy, gz); else f.grad(k, x, y, w, gx, gy);
  }
  // cnt elements of an optional operand (0 where the functor does not read it).
  template <bool kOn>
  static V opt(const T* p, int64_t cnt) { if constexpr (kOn) return vload(p, cnt); else return V(M(0)); }

  // ---- rows layout ---------------------------------------------------------------------------
  // Pass 1 over the row's elements [j0, j1) into lane-wise statistics.
  void pass1(const T* x, const T* y, const T* z, int64_t j0, int64_t j1, V (&s)[kS]) const {
    int64_t j = j0;
    for (; j + U * L <= j1; j += U * L) {
      V xs[U], ys[U], zs[U], ws[U];
      for (int u = 0; u < U; ++u) {
        xs[u] = vload(x + j + u * L, L);
        ys[u] = opt<F::kOther>(y + j + u * L, L);
        zs[u] = opt<kZ>(z + j + u * L, L);
        ws[u] = F::kWeighted ? vload(wv.data + j + u * L, L) : V(M(1));
      }
      add<false, U>(s, xs, ys, zs, ws);
    }
    for (; j < j1; j += L) {
      const int64_t cnt = std::min<int64_t>(L, j1 - j);
      V xs[1] = {vload(x + j, cnt)}, ys[1] = {opt<F::kOther>(y + j, cnt)}, ws[1] = {wload(j, cnt)};
      V zs[1] = {opt<kZ>(z + j, cnt)};
      if (cnt < L) xs[0] = vfirst(V(F::pad()), xs[0], cnt);
      if (cnt == L) {
        add<false, 1>(s, xs, ys, zs, ws);
      } else {
        add<true, 1>(s, xs, ys, zs, ws);
      }
    }
  }

  // The lanes folded into lane 0 by a fixed tree (merge of the upper half into the lower half).
  void fold(V (&s)[kS], M (&out)[kS]) const {
    if constexpr (RowSumStats<F>::value) {
      for (int k = 0; k < kS; ++k) out[k] = at::vec::vec_reduce_all<M>([](V a, V b) { return a + b; }, s[k]);
      return;
    }
    for (int64_t w = L / 2; w >= 1; w /= 2) {
      V hi[kS];
      for (int k = 0; k < kS; ++k) hi[k] = shuffle_down(s[k], w);
      f.merge(s, hi);
    }
    alignas(64) M buf[L];
    for (int k = 0; k < kS; ++k) {
      s[k].store(buf);
      out[k] = buf[0];
    }
  }

  // Pass 2 over the row's elements [j0, j1): the gradients with coefficients k. A row of C
  // elements starts anywhere in the gradient, and a vector store across two cache lines costs two:
  // on a long misaligned row a first partial vector brings the stores to the vector's alignment
  // (the gradient is elementwise, so the cut changes no value; at 64x1000 float the pass is 1.5x
  // faster).
  void pass2(const RowPtrs<T>& r, const M (&k)[kK], int64_t j0, int64_t j1) const {
    V kv[kK];
    for (int i = 0; i < kK; ++i) kv[i] = V(k[i]);
    const auto step = [&](int64_t j, int64_t cnt) {
      const V wv_ = F::kWeighted ? vload(wv.data + j, cnt) : V(M(1));
      V gx, gyv, gzv;
      grad(kv, vload(r.x + j, cnt), opt<F::kOther>(r.y + j, cnt), opt<kZ>(r.z + j, cnt), wv_, gx, gyv, gzv);
      if (r.g) vstore(r.g + j, gx, cnt);
      if constexpr (F::kOther) {
        if (r.gy) vstore(r.gy + j, gyv, cnt);
      }
      if constexpr (kZ) {
        if (r.gz) vstore(r.gz + j, gzv, cnt);
      }
    };
    int64_t j = j0;
    if (r.g && j1 - j0 >= 4 * L) {
      const auto mis = reinterpret_cast<uintptr_t>(r.g + j0) % (sizeof(T) * L);  // a multiple of sizeof(T)
      if (mis != 0) {
        const int64_t head = L - static_cast<int64_t>(mis / sizeof(T));
        step(j, head);
        j += head;
      }
    }
    for (; j + L <= j1; j += L) step(j, L);
    if (j < j1) step(j, j1 - j);
  }

  using Row = RowPtrs<T>;
  Row row_at(int64_t n, int64_t s) const { return row_ptrs<T>(a, n, s); }

  // An ignored row: loss 0, zero gradient rows.
  void zero_row(const Row& r, int64_t i) const {
    if (fwd)
      for (int64_t q = 0; q < sv; ++q) saved_at(i)[q] = M(0);
    if (r.g) std::fill_n(r.g, a.C, T(0));
    if (r.gy) std::fill_n(r.gy, a.C, T(0));
    if (r.gz) std::fill_n(r.gz, a.C, T(0));
  }

  // fn(j0, j1) for the segments of a row: the whole row, or (split) fixed segments in parallel.
  template <class G>
  void for_segments(bool split, const G& fn) const {
    if (!split) return fn(int64_t{0}, a.C);
    const int64_t seg = kRowChunkElems;
    at::parallel_for(0, ceil_div(a.C, seg), 1, [&](int64_t b, int64_t e) {
      for (int64_t q = b; q < e; ++q) fn(q * seg, std::min(a.C, (q + 1) * seg));
    });
  }

  // Loss (forward) and gradients of row (n, s) = sample i. `split` cuts the row into fixed
  // segments whose passes run in parallel (few, long rows); their statistics merge in segment order.
  M row(int64_t n, int64_t s, int64_t i, double inv, bool split) const {
    const Row r = row_at(n, s);
    const ClassSample cs = sample_of(a, n, s);
    if (!cs.active) {
      zero_row(r, i);
      return M(0);
    }
    RowSample<M> smp = row_sample<T>(a, cs, r.x, a.st[kRowInput][1], scale_of(n, s, inv));
    smp.v = value_at(a, n, s);
    M k[kK];
    M loss = 0;
    if (fwd) {
      M st[kS] = {};
      if constexpr (F::kPass1) {
        const V x0(a.C > 0 ? static_cast<M>(r.x[0]) : M(0));  // (a row of no elements: empty_row_loss)
        if (!split) {  // one segment: straight into st (no segment buffer; the same operations)
          V vs[kS];
          row_init(f, vs, x0, V(smp.xt));
          pass1(r.x, r.y, r.z, 0, a.C, vs);
          fold(vs, st);
        } else {
          std::vector<std::array<M, kS>> part(ceil_div(a.C, kRowChunkElems));  // few, long rows
          for_segments(split, [&](int64_t j0, int64_t j1) {
            V vs[kS];
            M out[kS];
            row_init(f, vs, x0, V(smp.xt));
            pass1(r.x, r.y, r.z, j0, j1, vs);
            fold(vs, out);
            std::copy(out, out + kS, part[j0 / kRowChunkElems].begin());
          });
          std::copy(part[0].begin(), part[0].end(), st);
          for (size_t q = 1; q < part.size(); ++q) {
            M o[kS];
            std::copy(part[q].begin(), part[q].end(), o);
            f.merge(st, o);
          }
        }
      }
      loss = f.finish(st, smp, k, saved_at(i));
      if constexpr (kS2 > 0) loss = row_second_sweep(*this, r.x, smp, k, i, split);
    } else {
      f.resume(saved_at(i), smp, k);
    }
    if (r.g || r.gy || r.gz) {
      for_segments(split, [&](int64_t j0, int64_t j1) { pass2(r, k, j0, j1); });
      if (r.g && cs.cls >= 0) r.g[cs.cls] = static_cast<T>(f.grad_target(k, smp.xt));
    }
    return loss;
  }

  // ---- spatial layout ------------------------------------------------------------------------
  // The rows (n, s0 .. s0+cnt) in the lanes; returns the sum of their losses (forward).
  LOSSEXT_FLATTEN double block(int64_t n, int64_t s0, int64_t cnt, double inv) const {
    const int64_t i0 = n * a.S + s0;  // in the (N, S) buffers
    const Row r = row_at(n, s0);
    const int64_t xc = a.st[kRowInput][1], yc = a.st[kRowOther][1], zc = a.st[kRowThird][1];
    const int64_t gc = a.st[kRowGradInput][1], gyc = a.st[kRowGradOther][1], gzc = a.st[kRowGradThird][1];
    alignas(64) M kl[kK][L] = {}, stl[kS][L] = {}, xt[L] = {};
    ClassSample cs[L];
    RowSample<M> smp[L];
    for (int64_t j = 0; j < cnt; ++j) {  // before pass 1, which may be relative to x_t (kTargetStats)
      cs[j] = sample_of(a, n, s0 + j);
      if (cs[j].active) {
        smp[j] = row_sample<T>(a, cs[j], r.x + j, xc, scale_of(n, s0 + j, inv));
        smp[j].v = value_at(a, n, s0 + j);
        xt[j] = smp[j].xt;
      }
    }
    if (fwd && F::kPass1) {
      V vs[kS];
      row_init(f, vs, vload(r.x, cnt), V::loadu(xt));
      int64_t c = 0;
      for (; c + U <= a.C; c += U) {
        V xs[U], ys[U], zs[U], ws[U];
        for (int u = 0; u < U; ++u) {
          xs[u] = vload(r.x + (c + u) * xc, cnt);
          ys[u] = opt<F::kOther>(r.y + (c + u) * yc, cnt);
          zs[u] = opt<kZ>(r.z + (c + u) * zc, cnt);
          ws[u] = V(F::kWeighted ? wv.data[c + u] : M(1));
        }
        add<false, U>(vs, xs, ys, zs, ws);
      }
      for (; c < a.C; ++c) {
        V xs[1] = {vload(r.x + c * xc, cnt)}, ys[1] = {opt<F::kOther>(r.y + c * yc, cnt)};
        V zs[1] = {opt<kZ>(r.z + c * zc, cnt)}, ws[1] = {V(F::kWeighted ? wv.data[c] : M(1))};
        add<false, 1>(vs, xs, ys, zs, ws);
      }
      for (int q = 0; q < kS; ++q) vs[q].store(stl[q]);
    }
    alignas(64) M lossl[L] = {};
    bool lanes = false;  // finished in vector lanes (F::kLaneFinish)
    if constexpr (RowLaneFinish<F>::value) {
      if (fwd && F::kPass1) {
        block_finish_lanes(*this, cnt, stl, cs, smp, kl, lossl, i0);
        lanes = true;
      }
    }
    for (int64_t j = 0; !lanes && j < cnt; ++j) {
      if (!cs[j].active) {
        if (fwd)
          for (int64_t q = 0; q < sv; ++q) saved_at(i0 + j)[q] = M(0);
        continue;
      }
      M k[kK];
      if (fwd) {
        M st[kS];
        for (int q = 0; q < kS; ++q) st[q] = stl[q][j];
        lossl[j] = f.finish(st, smp[j], k, saved_at(i0 + j));
      } else {
        f.resume(saved_at(i0 + j), smp[j], k);
      }
      for (int q = 0; q < kK; ++q) kl[q][j] = k[q];
    }
    if constexpr (kS2 > 0) {
      if (fwd) block_second_sweep(*this, r.x, xc, cnt, kl, cs, smp, lossl, i0);
    }
    double total = 0;
    if (fwd) {
      for (int64_t j = 0; j < cnt; ++j) {
        total += static_cast<double>(lossl[j]);  // (0 for inactive rows)
        if (none) static_cast<T*>(a.loss)[i0 + j] = static_cast<T>(lossl[j]);
      }
    }
    if (!r.g && !r.gy && !r.gz) return total;

    V kv[kK];
    for (int q = 0; q < kK; ++q) kv[q] = V::loadu(kl[q]);
    for (int64_t c = 0; c < a.C; ++c) {
      V gx, gyv, gzv;
      grad(kv, vload(r.x + c * xc, cnt), opt<F::kOther>(r.y + c * yc, cnt), opt<kZ>(r.z + c * zc, cnt),
           V(F::kWeighted ? wv.data[c] : M(1)), gx, gyv, gzv);
      if (r.g) vstore(r.g + c * gc, gx, cnt);
      if constexpr (F::kOther) {
        if (r.gy) vstore(r.gy + c * gyc, gyv, cnt);
      }
      if constexpr (kZ) {
        if (r.gz) vstore(r.gz + c * gzc, gzv, cnt);
      }
    }
    for (int64_t j = 0; j < cnt; ++j) {  // the [c == t] terms and the ignored rows, element by element
      if (!cs[j].active) {
        for (int64_t c = 0; c < a.C; ++c) {
          if (r.g) r.g[c * gc + j] = T(0);
          if (r.gy) r.gy[c * gyc + j] = T(0);
          if (r.gz) r.gz[c * gzc + j] = T(0);
        }
      } else if (r.g && cs[j].cls >= 0) {
        M k[kK];
        for (int q = 0; q < kK; ++q) k[q] = kl[q][j];
        r.g[cs[j].cls * gc + j] = static_cast<T>(f.grad_target(k, xt[j]));
      }
    }
    return total;
  }

  void run() const {
    const double denom = a.mean_denominator ? (rowwise_prepass<T>(a, op), *a.mean_denominator)
                                            : rowwise_prepass<T>(a, op);
    const double inv = a.reduction == Reduction::Mean ? 1.0 / denom : 1.0;
    const int64_t ns = a.N * a.S;
    double sum = 0;
    if (a.C == 0 && !a.empty_row_loss) {  // no classes: every loss is an empty sum (class targets: all were ignored)
      if (fwd) {
        if (none) std::fill_n(static_cast<T*>(a.loss), ns, T(0));
        std::fill_n(static_cast<M*>(a.saved), ns * sv, M(0));
      }
    } else if (a.spatial) {
      const int64_t nb = ceil_div(a.S, L);
      sum = chunked_reduce<double>(a.N * nb, units_per_chunk(a.C * L), [&](int64_t b, int64_t e) {
        double acc = 0;
        for (int64_t u = b; u < e; ++u) {
          const int64_t n = u / nb, s0 = (u - n * nb) * L;
          acc += block(n, s0, std::min<int64_t>(L, a.S - s0), inv);
        }
        return acc;
      });
    } else {
      const bool split = ns < kSplitRows && a.C >= kSplitMinC;
      sum = chunked_reduce<double>(ns, split ? ns : units_per_chunk(a.C), [&](int64_t b, int64_t e) {
        double acc = 0;
        int64_t i = b;
        for_samples(b, e, a.S, [&](int64_t n, int64_t s) {
          const M l = row(n, s, i, inv, split);
          if (fwd) {
            acc += static_cast<double>(l);
            if (none) static_cast<T*>(a.loss)[i] = static_cast<T>(l);
          }
          ++i;
        });
        return acc;
      });
    }
    if (fwd && !none) *static_cast<T*>(a.loss) = static_cast<T>(a.reduction == Reduction::Mean ? sum / denom : sum);
  }
};

// Runs the loss functor F (of math type math_t<T>) on a, for dtype T.
template <class T, class F, class P>
void rowwise_cpu(const RowwiseArgs& a, const P& params, const char* op) {
  RowDriver<T, F>(a, params, op).run();
}

}  // namespace lossext::CPU_CAPABILITY
