// cross_entropy CPU loops (ISA-compiled). Math and notation: losses/cross_entropy.h.
//
// Row layout (class dim contiguous): pass 1 reads the row once and keeps, per vector lane, an
// online max / sum of exponentials (plus the linear sums smoothing and probability targets need);
// the lanes are combined into the row's lse. If a gradient is wanted, pass 2 sweeps the row again
// (it is still in L2) and writes the final, reduction-scaled gradient once.
// Spatial layout (class dim strided, positions contiguous): the lanes hold L consecutive positions,
// i.e. L different rows, and both passes walk the classes; every load is a plain vector load.
// Work is cut into fixed chunks of rows / position blocks; losses are summed per chunk in double
// and the chunks added in order (deterministic for any thread count).
#include <lossext/cpu/rowwise.h>
#include <losses/cross_entropy.h>

#include <ATen/Dispatch.h>

namespace lossext::CPU_CAPABILITY {
namespace {

template <class M>
inline Vectorized<M> vld(const M* p, int64_t cnt) {
  return cnt == Vectorized<M>::size() ? Vectorized<M>::loadu(p) : Vectorized<M>::loadu(p, cnt);
}

template <class T, int K>
struct CELoop {
  using M = math_t<T>;
  using V = Vectorized<M>;
  using Tr = CETraits<K>;
  static constexpr int64_t L = V::size();
  static constexpr int U = 4;  // vectors (rows) / classes (spatial) per online-lse step

  const RowwiseArgs& a;
  const WeightView<T> wv;
  const CEConst<M> k;

  explicit CELoop(const RowwiseArgs& args)
      : a(args), wv(args), k{static_cast<M>(args.smoothing), static_cast<M>(args.C), wv.total} {}

  // Operand `op` at (n, 0, s).
  template <class P>
  P* at(const void* base, int op, int64_t n, int64_t s) const {
    return base ? static_cast<P*>(const_cast<void*>(base)) + n * a.st[op][0] + s * a.st[op][2] : nullptr;
  }

  M scale_of(int64_t n, int64_t s, double inv) const { return row_scale<T>(a, n, s, inv); }

  // ---- row layout ----------------------------------------------------------------------------
  struct Stats {
    M lse, sx, sy, syx;
  };

  Stats row_pass1(const T* x, const T* y) const {
    const int64_t C = a.C;
    const M* w = wv.data;
    LaneLse<M> acc;
    V sx(0), sy(0), syx(0);
    auto lin = [&](const V& xv, int64_t j, int64_t cnt) {  // xv zero-padded past cnt
      if constexpr (Tr::kLin) {
        const V wj = Tr::kW ? vld(w + j, cnt) : V(1);
        if constexpr (Tr::kProb) {
          const V yv = vload(y + j, cnt);
          const V wy = Tr::kW ? wj * yv : yv;
          sy = sy + wy;
          syx = at::vec::fmadd(wy, xv, syx);
        }
        sx = Tr::kW ? at::vec::fmadd(wj, xv, sx) : sx + xv;
      }
    };
    int64_t j = 0;
    for (; j + U * L <= C; j += U * L) {
      V xs[U];
      for (int u = 0; u < U; ++u) xs[u] = vload(x + j + u * L, L);
      acc.add(xs);
      for (int u = 0; u < U; ++u) lin(xs[u], j + u * L, L);
    }
    for (; j < C; j += L) {
      const int64_t cnt = std::min<int64_t>(L, C - j);
      V x1[1] = {vload(x + j, cnt)};
      lin(x1[0], j, cnt);
      x1[0] = pad(x1[0], cnt, std::numeric_limits<M>::lowest());
      acc.add(x1);
    }
    return {acc.combined(), static_cast<M>(hsum(sx)), static_cast<M>(hsum(sy)), static_cast<M>(hsum(syx))};
  }

  // sum_c w_c y_c of a row (the probability-target backward, which has no pass 1).
  M row_sum_wy(const T* y) const {
    V sy(0);
    for (int64_t j = 0; j < a.C; j += L) {
      const int64_t cnt = std::min<int64_t>(L, a.C - j);
      const V yv = vload(y + j, cnt);
      sy = sy + (Tr::kW ? vld(wv.data + j, cnt) * yv : yv);
    }
    return static_cast<M>(hsum(sy));
  }

  // Pass 2 over one row: g (if set) and gt (if set). Class targets: the [c == t] term is added
  // afterwards, from x_t saved before the sweep (in place, x_t is overwritten).
  template <bool kFull>
  inline void row_pass2_vec(const T* x, const T* y, T* g, T* gt, int64_t j, int64_t cnt, const V& vl, const V& va,
                            const V& vby, const V& ve, const V& vnby) const {
    if constexpr (kFull) cnt = L;
    const V xv = vload(x + j, cnt);
    const V wj = Tr::kW ? vld(wv.data + j, cnt) : V(1);
    const V yv = Tr::kProb ? vload(y + j, cnt) : V(0);
    if (g) vstore(g + j, ce_grad<K>((xv - vl).exp_u20(), yv, wj, va, vby, ve), cnt);
    if constexpr (Tr::kProb) {
      if (gt) vstore(gt + j, vnby * wj * (xv - vl), cnt);
    }
  }

  void row_pass2(const T* x, const T* y, T* g, T* gt, M lse, const CECoef<M>& cf, int64_t t, M xt) const {
    const V vl(lse), va(cf.a), vby(cf.by), ve(cf.e), vnby(-cf.by);
    const int64_t C = a.C;
    int64_t j = 0;
    for (; j + 4 * L <= C; j += 4 * L) {
      for (int u = 0; u < 4; ++u) row_pass2_vec<true>(x, y, g, gt, j + u * L, L, vl, va, vby, ve, vnby);
    }
    for (; j < C; j += L) row_pass2_vec<false>(x, y, g, gt, j, std::min<int64_t>(L, C - j), vl, va, vby, ve, vnby);
    if (g && t >= 0) {
      const M wt = Tr::kW ? wv.data[t] : M(1);
      g[t] = static_cast<T>(cf.a * std::exp(xt - lse) - wt * cf.e - cf.b);
    }
  }

  // Forward of row (n, s): writes its lse and, where wanted, its gradients; returns its loss.
  M row_forward(int64_t n, int64_t s, M r, M* lse_out) const {
    const T* x = at<const T>(a.input, kRowInput, n, s);
    T* g = at<T>(a.grad_input, kRowGradInput, n, s);
    if constexpr (Tr::kProb) {
      const T* y = at<const T>(a.target, kRowTarget, n, s);
      T* gt = at<T>(a.grad_target, kRowGradTarget, n, s);
      const Stats st = row_pass1(x, y);
      *lse_out = st.lse;
      if (g || gt) row_pass2(x, y, g, gt, st.lse, ce_prob_coef(k, st.sy, r, st.lse), -1, M(0));
      return ce_prob_loss(k, st.lse, st.sy, st.syx, st.sx);
    } else {
      const ClassSample cs = sample_of(a, n, s);
      if (!cs.active) {  // ignored: no loss, no gradient, lse not needed
        *lse_out = M(0);
        if (g) std::fill_n(g, a.C, T(0));
        return M(0);
      }
      const Stats st = row_pass1(x, nullptr);
      *lse_out = st.lse;
      const M wt = wv.data ? wv.data[cs.cls] : M(1);
      const M xt = static_cast<M>(x[cs.cls]);  // before pass 2 may overwrite it (in place)
      const M loss = ce_class_loss(k, wt, st.lse, xt, st.sx);
      if (g) row_pass2(x, nullptr, g, nullptr, st.lse, ce_class_coef(k, wt, r, st.lse), cs.cls, xt);
      return loss;
    }
  }

  void row_backward(int64_t n, int64_t s, M r, M lse) const {
    const T* x = at<const T>(a.input, kRowInput, n, s);
    T* g = at<T>(a.grad_input, kRowGradInput, n, s);
    if constexpr (Tr::kProb) {
      const T* y = at<const T>(a.target, kRowTarget, n, s);
      T* gt = at<T>(a.grad_target, kRowGradTarget, n, s);
      row_pass2(x, y, g, gt, lse, ce_prob_coef(k, row_sum_wy(y), r, lse), -1, M(0));
    } else {
      const ClassSample cs = sample_of(a, n, s);
      if (!cs.active) {
        if (g) std::fill_n(g, a.C, T(0));
        return;
      }
      const M wt = wv.data ? wv.data[cs.cls] : M(1);
      row_pass2(x, nullptr, g, nullptr, lse, ce_class_coef(k, wt, r, lse), cs.cls, static_cast<M>(x[cs.cls]));
    }
  }

  // ---- spatial layout ------------------------------------------------------------------------
  // The samples (n, s0 .. s0+cnt) in the lanes; returns the sum of their losses (forward).
  double block(int64_t n, int64_t s0, int64_t cnt, double inv) const {
    const bool fwd = a.mode == RowMode::kForward;
    const int64_t i0 = n * a.S + s0;  // in the (N, S) buffers
    const T* x = at<const T>(a.input, kRowInput, n, s0);
    const T* y = Tr::kProb ? at<const T>(a.target, kRowTarget, n, s0) : nullptr;
    T* g = at<T>(a.grad_input, kRowGradInput, n, s0);
    T* gt = Tr::kProb ? at<T>(a.grad_target, kRowGradTarget, n, s0) : nullptr;
    const int64_t xc = a.st[kRowInput][1], yc = a.st[kRowTarget][1];
    const int64_t gc = a.st[kRowGradInput][1], gtc = a.st[kRowGradTarget][1];
    const M* w = wv.data;
    M* lse_buf = static_cast<M*>(a.lse);

    alignas(64) M lse_a[L] = {}, sx_a[L] = {}, sy_a[L] = {}, syx_a[L] = {};
    if (fwd) {
      LaneLse<M> acc;
      V sx(0), sy(0), syx(0);
      auto lin = [&](const V& xv, int64_t c) {
        if constexpr (Tr::kLin) {
          const V wc = Tr::kW ? V(w[c]) : V(1);
          if constexpr (Tr::kProb) {
            const V wy = wc * vload(y + c * yc, cnt);
            sy = sy + wy;
            syx = at::vec::fmadd(wy, xv, syx);
          }
          sx = at::vec::fmadd(wc, xv, sx);
        }
      };
      int64_t c = 0;
      for (; c + U <= a.C; c += U) {
        V xs[U];
        for (int u = 0; u < U; ++u) xs[u] = vload(x + (c + u) * xc, cnt);
        acc.add(xs);
        for (int u = 0; u < U; ++u) lin(xs[u], c + u);
      }
      for (; c < a.C; ++c) {
        V x1[1] = {vload(x + c * xc, cnt)};
        acc.add(x1);
        lin(x1[0], c);
      }
      acc.lanes().store(lse_a);
      sx.store(sx_a);
      sy.store(sy_a);
      syx.store(syx_a);
    } else {
      for (int64_t j = 0; j < cnt; ++j) lse_a[j] = lse_buf[i0 + j];
      if constexpr (Tr::kProb) {
        V sy(0);
        for (int64_t c = 0; c < a.C; ++c) sy = sy + (Tr::kW ? V(w[c]) : V(1)) * vload(y + c * yc, cnt);
        sy.store(sy_a);
      }
    }

    alignas(64) M ca[L] = {}, cb[L] = {}, cby[L] = {}, ce[L] = {}, ct[L];
    double total = 0;
    for (int64_t j = 0; j < L; ++j) ct[j] = M(-1);
    for (int64_t j = 0; j < cnt; ++j) {
      const M r = scale_of(n, s0 + j, inv);
      M loss = 0;
      CECoef<M> cf{0, 0, 0, 0};
      if constexpr (Tr::kProb) {
        loss = ce_prob_loss(k, lse_a[j], sy_a[j], syx_a[j], sx_a[j]);
        cf = ce_prob_coef(k, sy_a[j], r, lse_a[j]);
      } else {
        const ClassSample cs = sample_of(a, n, s0 + j);
        if (cs.active) {
          const M wt = w ? w[cs.cls] : M(1);
          loss = ce_class_loss(k, wt, lse_a[j], static_cast<M>(x[cs.cls * xc + j]), sx_a[j]);
          cf = ce_class_coef(k, wt, r, lse_a[j]);
          ct[j] = static_cast<M>(cs.cls);
        }
      }
      if (fwd) {
        total += static_cast<double>(loss);
        lse_buf[i0 + j] = lse_a[j];
        if (a.reduction == Reduction::None) static_cast<T*>(a.loss)[i0 + j] = static_cast<T>(loss);
      }
      ca[j] = cf.a;
      cb[j] = cf.b;
      cby[j] = cf.by;
      ce[j] = cf.e;
    }
    if (!g && !gt) return total;

    // Pass 2. The [c == t] term compares c with the lane's class as a float, exact below 2^24
    // classes; beyond that (never in practice) it is applied afterwards, element by element.
    const bool exact = a.C < (int64_t(1) << 24);
    const V vl = V::loadu(lse_a), va = V::loadu(ca), vb = V::loadu(cb), vby = V::loadu(cby), ve = V::loadu(ce);
    const V vt = V::loadu(ct), vnby = V(0) - vby;
    for (int64_t c = 0; c < a.C; ++c) {
      const V xv = vload(x + c * xc, cnt);
      const V wc = Tr::kW ? V(w[c]) : V(1);
      const V yv = Tr::kProb ? vload(y + c * yc, cnt) : V(0);
      if (g) {
        V gv = ce_grad<K>((xv - vl).exp_u20(), yv, wc, va, vby, ve);
        if constexpr (!Tr::kProb) {
          if (exact) gv = gv - V::blendv(V(0), vb, V(static_cast<M>(c)) == vt);
        }
        vstore(g + c * gc, gv, cnt);
      }
      if constexpr (Tr::kProb) {
        if (gt) vstore(gt + c * gtc, vnby * wc * (xv - vl), cnt);
      }
    }
    if constexpr (!Tr::kProb) {
      if (g && !exact) {
        for (int64_t j = 0; j < cnt; ++j) {
          if (ct[j] < M(0)) continue;
          T& e = g[sample_of(a, n, s0 + j).cls * gc + j];
          e = static_cast<T>(static_cast<M>(e) - cb[j]);
        }
      }
    }
    return total;
  }

  // ---- in-place backward: grad_input *= grad_output (per sample) ------------------------------
  void scale_in_place() const {
    T* g0 = static_cast<T*>(a.grad_input);
    const int64_t gc = a.st[kRowGradInput][1];
    if (a.reduction != Reduction::None) {  // one factor for the whole contiguous buffer
      const V f(scale_of(0, 0, 1.0));
      chunked_for(a.N * a.C * a.S, kRowChunkElems * 4, [&](int64_t b, int64_t e) {
        for (int64_t j = b; j < e; j += L) {
          const int64_t cnt = std::min<int64_t>(L, e - j);
          vstore(g0 + j, vload(g0 + j, cnt) * f, cnt);
        }
      });
      return;
    }
    if (!a.spatial) {
      chunked_for(a.N * a.S, units_per_chunk(a.C), [&](int64_t b, int64_t e) {
        for_samples(b, e, a.S, [&](int64_t n, int64_t s) {
          T* g = at<T>(g0, kRowGradInput, n, s);
          const V f(scale_of(n, s, 1.0));
          for (int64_t j = 0; j < a.C; j += L) {
            const int64_t cnt = std::min<int64_t>(L, a.C - j);
            vstore(g + j, vload(g + j, cnt) * f, cnt);
          }
        });
      });
      return;
    }
    const int64_t nb = ceil_div(a.S, L);
    chunked_for(a.N * nb, units_per_chunk(a.C * L), [&](int64_t b, int64_t e) {
      for (int64_t u = b; u < e; ++u) {
        const int64_t n = u / nb, s0 = (u - n * nb) * L, cnt = std::min<int64_t>(L, a.S - s0);
        alignas(64) M f[L] = {};
        for (int64_t j = 0; j < cnt; ++j) f[j] = scale_of(n, s0 + j, 1.0);
        const V fv = V::loadu(f);
        T* g = at<T>(g0, kRowGradInput, n, s0);
        for (int64_t c = 0; c < a.C; ++c) vstore(g + c * gc, vload(g + c * gc, cnt) * fv, cnt);
      }
    });
  }

  void run() const {
    if (a.mode == RowMode::kScaleInPlace) return scale_in_place();
    const double denom = rowwise_prepass<T>(a, "cross_entropy");
    const double inv = a.reduction == Reduction::Mean ? 1.0 / denom : 1.0;
    const bool fwd = a.mode == RowMode::kForward;
    const bool none = a.reduction == Reduction::None;
    const int64_t ns = a.N * a.S;
    double sum = 0;
    if (a.C == 0) {  // no classes: every loss is an empty sum (all targets were ignored)
      if (fwd && none)
        for (int64_t i = 0; i < ns; ++i) static_cast<T*>(a.loss)[i] = T(0);
    } else if (!a.spatial) {
      M* lse = static_cast<M*>(a.lse);
      sum = chunked_reduce<double>(ns, units_per_chunk(a.C), [&](int64_t b, int64_t e) {
        double acc = 0;
        int64_t i = b;
        for_samples(b, e, a.S, [&](int64_t n, int64_t s) {
          if (fwd) {
            const M l = row_forward(n, s, static_cast<M>(inv), lse + i);
            acc += static_cast<double>(l);
            if (none) static_cast<T*>(a.loss)[i] = static_cast<T>(l);
          } else {
            row_backward(n, s, scale_of(n, s, inv), lse[i]);
          }
          ++i;
        });
        return acc;
      });
    } else {
      const int64_t nb = ceil_div(a.S, L);
      sum = chunked_reduce<double>(a.N * nb, units_per_chunk(a.C * L), [&](int64_t b, int64_t e) {
        double acc = 0;
        for (int64_t u = b; u < e; ++u) {
          const int64_t n = u / nb, s0 = (u - n * nb) * L;
          acc += block(n, s0, std::min<int64_t>(L, a.S - s0), inv);
        }
        return acc;
      });
    }
    if (fwd && !none) *static_cast<T*>(a.loss) = static_cast<T>(a.reduction == Reduction::Mean ? sum / denom : sum);
  }
};

template <class T>
void cross_entropy_typed(const RowwiseArgs& a) {
  ce_dispatch_kind(a, [&](auto kind) { CELoop<T, decltype(kind)::value>(a).run(); });
}

void cross_entropy_cpu(const RowwiseArgs& a) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "cross_entropy_cpu", [&] { cross_entropy_typed<scalar_t>(a); });
}

}  // namespace
}  // namespace lossext::CPU_CAPABILITY

LOSSEXT_REGISTER_CPU(lossext::cross_entropy_stub, &lossext::CPU_CAPABILITY::cross_entropy_cpu);
