// ctc_loss on the CPU (losses/ctc_loss.h): samples in parallel (at::parallel_for, one sample per
// task, so the bits do not depend on the thread count), the alpha and beta recursions vectorized
// over the label positions s (row t depends only on row t -+ 1), the gradient row's exp over the
// classes vectorized. The class gather of alpha * beta runs in increasing s in one thread.
#include <lossext/cpu/vec.h>
#include <losses/ctc_loss.h>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace lossext::CPU_CAPABILITY {
namespace {

template <class M>
constexpr M ninf() { return -std::numeric_limits<M>::infinity(); }

// out[s] = e[s] + lse(p0[s], p1[s], p2[s] + skip[s]) for s in [0, n); skip is 0 or -inf.
template <class M>
void lse3_row(M* out, const M* e, const M* p0, const M* p1, const M* p2, const M* skip, int64_t n) {
  using V = Vectorized<M>;
  const V neg_inf(ninf<M>()), zero(M(0));
  int64_t s = 0;
  for (; s + V::size() <= n; s += V::size()) {
    const V a = V::loadu(p0 + s), b = V::loadu(p1 + s), c = V::loadu(p2 + s) + V::loadu(skip + s);
    const V m = at::vec::maximum(a, at::vec::maximum(b, c));  // NaN propagates
    const V ms = V::blendv(m, zero, m == neg_inf);           // three -inf: log(0) = -inf, no NaN
    (V::loadu(e + s) + (ms + ((a - ms).exp() + (b - ms).exp() + (c - ms).exp()).log())).store(out + s);
  }
  for (; s < n; ++s) out[s] = e[s] + ctc_lse3<M>(p0[s], p1[s], p2[s] + skip[s]);
}

template <class M>
struct Scratch {
  std::vector<M> alpha, e, b0, b1, skip_a, skip_b, acc;
  std::vector<int64_t> lab, uniq, mark;
};

template <class M>
void fill_rows(M* g, int64_t t0, int64_t t1, int64_t NC, int64_t C, M v) {
  for (int64_t t = t0; t < t1; ++t) std::fill(g + t * NC, g + t * NC + C, v);
}

// One sample: returns its nll and writes its gradient rows (where a.grad is set).
template <class M>
M ctc_sample(const CtcArgs& a, int64_t n, const int64_t* tg, Scratch<M>& w) {
  using V = Vectorized<M>;
  const M* lp = static_cast<const M*>(a.log_probs) + n * a.C;
  const int64_t NC = a.N * a.C, C = a.C;
  const int64_t Ti = a.input_lengths[n], L = a.target_lengths[n], Sp = 2 * L + 1, W = Sp + 2;
  M* g = a.grad ? static_cast<M*>(a.grad) + n * C : nullptr;
  if (Ti == 0) {  // torch: log-likelihood 0 for an empty target (nll = -0), else impossible
    if (g) fill_rows<M>(g, 0, a.T, NC, C, M(0));
    return L == 0 ? -M(0) : -ninf<M>();
  }
  w.lab.resize(Sp);
  for (int64_t s = 0; s < Sp; ++s) w.lab[s] = (s & 1) ? tg[((s - 1) / 2) * a.tg_stride_s] : a.blank;
  const int64_t* lab = w.lab.data();
  w.skip_a.resize(Sp);
  w.skip_b.resize(Sp);
  for (int64_t s = 0; s < Sp; ++s) {
    w.skip_a[s] = ((s & 1) && s >= 3 && lab[s] != lab[s - 2]) ? M(0) : ninf<M>();
    w.skip_b[s] = ((s & 1) && s + 2 < Sp && lab[s + 2] != lab[s]) ? M(0) : ninf<M>();
  }
  w.e.resize(Sp);
  M* e = w.e.data();
  // alpha: Ti rows of W = S' + 2 entries, alpha_t(s) at [t * W + 2 + s]; the two leading -inf pads
  // make s - 1 and s - 2 plain shifted loads.
  w.alpha.resize(Ti * W);
  M* al = w.alpha.data();
  for (int64_t t = 0; t < Ti; ++t) al[t * W] = al[t * W + 1] = ninf<M>();
  std::fill(al + 2, al + W, ninf<M>());
  al[2] = lp[a.blank];
  if (L > 0) al[3] = lp[lab[1]];
  for (int64_t t = 1; t < Ti; ++t) {
    const M* row = lp + t * NC;
    for (int64_t s = 0; s < Sp; ++s) e[s] = row[lab[s]];
    const M* prev = al + (t - 1) * W;
    lse3_row<M>(al + t * W + 2, e, prev + 2, prev + 1, prev, w.skip_a.data(), Sp);
  }
  const M* last = al + (Ti - 1) * W + 2;
  const M nll = -ctc_lse3<M>(last[Sp - 1], L > 0 ? last[Sp - 2] : ninf<M>(), ninf<M>());
  if (!g) return nll;
  fill_rows<M>(g, Ti, a.T, NC, C, M(0));
  if (nll == -ninf<M>()) {  // impossible: zero_infinity zeroes it, else torch's -inf + inf = NaN
    fill_rows<M>(g, 0, Ti, NC, C, a.zero_infinity ? M(0) : std::numeric_limits<M>::quiet_NaN());
    return nll;
  }
  const M scale = a.grad_reduced ? M(ctc_sample_scale(a.reduction, L, a.N)) : M(1);
  // The distinct labels of l' (blank first); mark[c] == n once c is listed for this sample.
  w.mark.resize(C, -1);
  w.uniq.clear();
  for (int64_t s = 0; s < Sp; ++s) {
    if (w.mark[lab[s]] != n) {
      w.mark[lab[s]] = n;
      w.uniq.push_back(lab[s]);
    }
  }
  w.acc.resize(C);
  M* acc = w.acc.data();
  // beta: two rows of W entries, beta(s) at [s]; the two trailing -inf pads make s + 1, s + 2 loads.
  w.b0.assign(W, ninf<M>());
  w.b1.assign(W, ninf<M>());
  M* bc = w.b0.data();
  M* bn = w.b1.data();
  const V vscale(scale);
  for (int64_t t = Ti - 1; t >= 0; --t) {
    const M* row = lp + t * NC;
    if (t == Ti - 1) {
      bc[Sp - 1] = row[a.blank];
      if (L > 0) bc[Sp - 2] = row[lab[Sp - 2]];
    } else {
      for (int64_t s = 0; s < Sp; ++s) e[s] = row[lab[s]];
      lse3_row<M>(bc, e, bn, bn + 1, bn + 2, w.skip_b.data(), Sp);
    }
    // v(s) = alpha_t(s) + beta_t(s) into e; m = max_s v (finite: a path of the finite nll passes t).
    const M* at = al + t * W + 2;
    M m = ninf<M>();
    for (int64_t s = 0; s < Sp; ++s) {
      e[s] = at[s] + bc[s];
      m = std::max(m, e[s]);
    }
    for (const int64_t c : w.uniq) acc[c] = M(0);
    for (int64_t s = 0; s < Sp; ++s) acc[lab[s]] += std::exp(e[s] - m);  // increasing s: fixed order
    // grad = scale (exp(lp) - exp(log acc + m + nll - lp)); the second term only for labels of l'.
    M* gr = g + t * NC;
    int64_t c = 0;
    for (; c + V::size() <= C; c += V::size()) (V::loadu(row + c).exp() * vscale).store(gr + c);
    if (c < C) (V::loadu(row + c, C - c).exp() * vscale).store(gr + c, C - c);
    for (const int64_t u : w.uniq) {
      gr[u] = scale * (std::exp(row[u]) - std::exp(std::log(acc[u]) + m + nll - row[u]));
    }
    std::swap(bc, bn);
  }
  return nll;
}

template <class M>
void ctc_scale(const CtcArgs& a) {
  using V = Vectorized<M>;
  const M* raw = static_cast<const M*>(a.raw);
  const M* go = static_cast<const M*>(a.grad_output);
  M* g = static_cast<M*>(a.grad);
  const int64_t C = a.C;
  at::parallel_for(0, a.T * a.N, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t n = r % a.N;
      const M f = go[n * a.go_stride] * M(ctc_sample_scale(a.reduction, a.target_lengths[n], a.N));
      const V vf(f);
      int64_t c = 0;
      for (; c + V::size() <= C; c += V::size()) (V::loadu(raw + r * C + c) * vf).store(g + r * C + c);
      for (; c < C; ++c) g[r * C + c] = raw[r * C + c] * f;
    }
  });
}

template <class M>
void ctc_run(const CtcArgs& a) {
  if (a.mode == CtcMode::kScale) return ctc_scale<M>(a);
  std::vector<int64_t> off(a.N);
  for (int64_t n = 0, pos = 0; n < a.N; ++n) {
    off[n] = a.concatenated ? pos * a.tg_stride_s : n * a.tg_stride_n;
    pos += a.target_lengths[n];
  }
  std::vector<M> nll(a.N);
  at::parallel_for(0, a.N, 1, [&](int64_t b, int64_t e) {
    Scratch<M> w;
    for (int64_t n = b; n < e; ++n) nll[n] = ctc_sample<M>(a, n, a.targets + off[n], w);
  });
  M* out = static_cast<M*>(a.loss);
  double total = 0;
  for (int64_t n = 0; n < a.N; ++n) {
    const M l = (a.zero_infinity && nll[n] == -ninf<M>()) ? M(0) : nll[n];
    if (a.reduction == 0) {
      out[n] = l;
    } else {
      total += double(l) * ctc_sample_scale(a.reduction, a.target_lengths[n], a.N);
    }
  }
  if (a.reduction != 0) out[0] = static_cast<M>(total);
}

void ctc_loss_cpu(const CtcArgs& a) {
  AT_DISPATCH_FLOATING_TYPES(a.dtype, "ctc_loss_cpu", [&] { ctc_run<scalar_t>(a); });
}

}  // namespace
}  // namespace lossext::CPU_CAPABILITY

LOSSEXT_REGISTER_CPU(lossext::ctc_loss_stub, &lossext::CPU_CAPABILITY::ctc_loss_cpu);
