// The row-wise CPU driver's helpers beside its row loops (ISA-compiled code only): the work
// chunks, the walk over the (N, S) samples, the target pre-pass (validation and the mean's denominator) and the
// class weights in the math type. Used by lossext/cpu/rowwise.h and rowwise_set.h.
#pragma once

#include <c10/util/Exception.h>
#include <lossext/cpu/reduce.h>
#include <lossext/cpu/vec.h>
#include <lossext/rowwise.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace lossext::CPU_CAPABILITY {

// Elements of work per parallel chunk.
constexpr int64_t kRowChunkElems = 32768;
// Rows of at least this many elements, when there are fewer rows than kSplitRows, are split.
constexpr int64_t kSplitMinC = 4 * kRowChunkElems;
constexpr int64_t kSplitRows = 8;

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

// Validates the class targets and returns the denominator of the mean (the summed weight of the
// non-ignored samples; without class targets, the row count). Runs before anything is written, so
// a bad target raises IndexError (as torch's "Target 5 is out of bounds.") with the outputs untouched.
template <class T>
double rowwise_prepass(const RowwiseArgs& a, const char* op) {
  if (!a.target) return rows_mean_denominator(a);
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
  Acc acc;
  if (!a.class_slice && !a.target_u8 && !(a.weight && a.weighted_mean)) {
    // The common case (int64 class indices, no class slice, every counted sample weighing 1):
    // sample_of's rules on locals and an integer count (the same double: a sum of ones is exact).
    // The general walk below re-reads the args' flags every sample (~9% of a forward-only
    // focal_loss at 8x19x64x64).
    const int64_t* tg = static_cast<const int64_t*>(a.target);
    const int64_t C = a.C, ii = a.ignore_index, tN = a.tN, tS = a.tS;
    const bool use_ii = a.use_ignore_index, bg = a.background_class;
    acc = chunked_reduce<Acc>(a.N * a.S, units_per_chunk(4), [&](int64_t b, int64_t e) {
      Acc r;
      int64_t count = 0;
      for_samples(b, e, a.S, [&](int64_t n, int64_t s) {
        const int64_t t = tg[n * tN + s * tS];
        const bool ignored = use_ii && t == ii;
        const bool invalid = !ignored && !(bg && t == C) && (t < 0 || t >= C);
        if (invalid && !r.bad) {
          r.bad = true;
          r.value = t;
        }
        count += !ignored && !invalid;
      });
      r.w = static_cast<double>(count);
      return r;
    });
  } else {
    acc = chunked_reduce<Acc>(a.N * a.S, units_per_chunk(4), [&](int64_t b, int64_t e) {
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
  }
  if (a.index_error) {
    TORCH_CHECK_INDEX(!acc.bad, op, ": Target ", acc.value, " is out of bounds (", a.C, " classes).");
  } else {  // torch's multi_margin_loss: RuntimeError "target out of range"
    TORCH_CHECK(!acc.bad, op, ": target ", acc.value, " is out of range (", a.C, " classes)");
  }
  return acc.w;
}

// The class weights in the math type (converted once for half types) and their sum W (C when
// unweighted). `data` is what the sweeps read: args.sweep_weight where set, else the class weights
// (nullptr when unweighted).
template <class T>
struct WeightView {
  using M = math_t<T>;
  std::vector<M> buf;
  const M* data = nullptr;
  M total = 0;
  explicit WeightView(const RowwiseArgs& a) {
    load(a);
    if (a.sweep_weight) data = static_cast<const M*>(a.sweep_weight);
  }

 private:
  void load(const RowwiseArgs& a) {
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

}  // namespace lossext::CPU_CAPABILITY
