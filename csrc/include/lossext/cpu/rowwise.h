// CPU building blocks of the row-wise losses (ISA-compiled code only; see lossext/rowwise.h):
// the class-target pre-pass (validation + the mean's denominator), deterministic chunked
// iteration over samples / rows / spatial blocks, lane-wise online log-sum-exp, and loads and
// stores of partial vectors.
#pragma once

#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <c10/util/Exception.h>
#include <lossext/cpu/reduce.h>
#include <lossext/cpu/vec.h>
#include <lossext/rowwise.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace lossext::CPU_CAPABILITY {

// Elements of work per parallel chunk. Chunks depend on the sizes only (never on the thread
// count), so per-chunk partial sums added in chunk order give the same bits on any machine.
constexpr int64_t kRowChunkElems = 32768;

// Samples, rows or blocks per chunk when each costs `cost` elements of work.
inline int64_t units_per_chunk(int64_t cost) { return std::max<int64_t>(1, kRowChunkElems / std::max<int64_t>(1, cost)); }

// fn(n, s) for the samples [begin, end) of the (N, S) grid, in order, without a division per sample.
template <class F>
inline void for_samples(int64_t begin, int64_t end, int64_t S, const F& fn) {
  if (begin >= end) return;
  int64_t n = begin / S, s = begin - n * S;
  for (int64_t i = begin; i < end; ++i) {
    fn(n, s);
    if (++s == S) {
      s = 0;
      ++n;
    }
  }
}

// Validates the class targets of every sample and returns the denominator of the mean (the summed
// weight of the non-ignored samples; probability targets: the sample count). Runs before anything
// is written, so a bad target raises IndexError (as torch's "Target 5 is out of bounds.") with
// the outputs untouched.
template <class T>
double rowwise_prepass(const RowwiseArgs& a, const char* op) {
  if (a.prob) return prob_mean_denominator(a);
  struct Acc {
    double w = 0;
    bool bad = false;
    int64_t value = 0;
    Acc& operator+=(const Acc& o) {
      w += o.w;
      if (!bad && o.bad) {
        bad = true;
        value = o.value;
      }
      return *this;
    }
  };
  const int64_t total = a.N * a.S;
  const Acc acc = chunked_reduce<Acc>(total, units_per_chunk(4), [&](int64_t b, int64_t e) {
    Acc r;
    for_samples(b, e, a.S, [&](int64_t n, int64_t s) {
      const ClassSample cs = sample_of(a, n, s);
      if (cs.invalid && !r.bad) {
        r.bad = true;
        r.value = cs.cls;
      }
      r.w += static_cast<double>(denominator_weight<T>(a, cs));
    });
    return r;
  });
  TORCH_CHECK_INDEX(!acc.bad, op, ": Target ", acc.value, " is out of bounds (", a.C, " classes).");
  return acc.w;
}

// The gradient scale of sample (n, s): `inv` (1/denominator for mean, else 1), times grad_output
// in the backward modes (0-d for mean/sum, per sample for none).
template <class T>
inline math_t<T> row_scale(const RowwiseArgs& a, int64_t n, int64_t s, double inv) {
  using M = math_t<T>;
  if (a.mode == RowMode::kForward) return static_cast<M>(inv);
  const T* go = static_cast<const T*>(a.grad_output);
  const T g = a.reduction == Reduction::None ? go[n * a.gN + s * a.gS] : go[0];
  return static_cast<M>(static_cast<double>(g) * inv);
}

// Writes zeros over the first `numel` elements at p (a dense gradient buffer), in parallel.
template <class T>
inline void zero_fill(T* p, int64_t numel) {
  chunked_for(numel, kRowChunkElems * 8, [&](int64_t b, int64_t e) { std::memset(p + b, 0, (e - b) * sizeof(T)); });
}

// The class weights in the math type (converted once for half types) and their sum W (C when
// unweighted). `data` is nullptr when unweighted.
template <class T>
struct WeightView {
  using M = math_t<T>;
  std::vector<M> buf;
  const M* data = nullptr;
  M total = 0;
  explicit WeightView(const RowwiseArgs& a) {
    if (!a.weight) {
      total = static_cast<M>(a.C);
      return;
    }
    const T* w = static_cast<const T*>(a.weight);
    if constexpr (std::is_same_v<T, M>) {
      data = w;
    } else {
      buf.assign(w, w + a.C);
      data = buf.data();
    }
    double s = 0;
    for (int64_t c = 0; c < a.C; ++c) s += static_cast<double>(data[c]);
    total = static_cast<M>(s);
  }
};

// The lanes with index >= count set to v (vload pads with 0, which would count as a logit).
template <class M>
inline Vectorized<M> pad(const Vectorized<M>& x, int64_t count, M v) {
  return count == Vectorized<M>::size() ? x : Vectorized<M>::set(Vectorized<M>(v), x, count);
}

// Lane-wise online (max m, sum z of exp(x - m)): each lane is one running log-sum-exp. `add` takes
// U vectors at once and rescales z only when their maximum exceeds m in some lane (rare after the
// first few groups of a row), so the cost is ~1 exp per element.
// The exp is Vectorized::exp_u20 (a degree-5 polynomial, <= 20 ulp on float: ~10x below the float
// tolerance of the loss; the exact exp for double). Arguments are <= 0 or NaN here; NaN logits
// propagate through the NaN-aware maximum into m and hence the lse.
template <class M>
struct LaneLse {
  using V = Vectorized<M>;
  V m = V(std::numeric_limits<M>::lowest());
  V z = V(M(0));

  template <int U>
  inline void add(const V (&x)[U]) {
    // Trees, not chains: the loop-carried dependencies are one max (m) and one add (z).
    V bm[U];
    for (int u = 0; u < U; ++u) bm[u] = x[u];
    for (int w = 1; w < U; w *= 2)
      for (int u = 0; u + w < U; u += 2 * w) bm[u] = at::vec::maximum(bm[u], bm[u + w]);
    if ((bm[0] <= m).zero_mask() != 0) {  // a new maximum (or a NaN) in some lane: rescale z
      const V mn = at::vec::maximum(m, bm[0]);
      z = z * (m - mn).exp_u20();
      m = mn;
    }
    V e[U];
    for (int u = 0; u < U; ++u) e[u] = (x[u] - m).exp_u20();
    for (int w = 1; w < U; w *= 2)
      for (int u = 0; u + w < U; u += 2 * w) e[u] = e[u] + e[u + w];
    z = z + e[0];
  }

  // Per-lane lse (spatial layout: each lane is a row); NaN for non-finite results.
  inline V lanes() const {
    const V l = m + z.log();
    return l + (l - l);
  }

  // The lanes combined into one row's lse (row layout: the lanes split one row).
  inline M combined() const {
    const M mall = at::vec::vec_reduce_all<M>([](const V& p, const V& q) { return at::vec::maximum(p, q); }, m);
    const M zall = static_cast<M>(hsum((m - V(mall)).exp_u20() * z));
    return finish_lse(mall, zall);
  }
};

}  // namespace lossext::CPU_CAPABILITY
