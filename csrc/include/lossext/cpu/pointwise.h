// The CPU pointwise driver: one loop for every pointwise loss (ISA-compiled code only).
// A kernel file instantiates it with LOSSEXT_CPU_POINTWISE(stub, Functor).
//
// Elements are visited in fixed chunks (lossext/cpu/reduce.h) so sums are deterministic. Inside a
// chunk the coalesced index space is cut into runs along the innermost dimension; a run is cut
// into tiles of kTile elements. For each tile an operand is read straight from memory when it is
// unit-stride and already in the math type (the common float32/float64 case), and otherwise
// gathered / converted into a small buffer first (strided, broadcast, half types, an operand of
// another dtype: an integer target is converted a tile at a time, never copied whole). The
// functor then runs on whole vectors; outputs are written back the same way.
//
// The mode is a template parameter and the vector loop has no per-vector branch: full vectors run
// in one loop, the ragged end of a tile in one masked step, and absent outputs (a gradient nobody
// asked for) go to a scratch tile instead of being tested for. kForwardRows (a per-row sum, see
// lossext/pointwise.h) cuts the work by rows instead and sums each row with the same tile loop.
#pragma once

#include <ATen/Dispatch.h>
#include <c10/util/Exception.h>
#include <lossext/common.h>
#include <lossext/convert.h>
#include <lossext/cpu/reduce.h>
#include <lossext/cpu/vec.h>
#include <lossext/dispatch.h>
#include <lossext/pointwise.h>
#include <lossext/vmath.h>

#include <algorithm>

namespace lossext::CPU_CAPABILITY {

constexpr int64_t kPwTile = 256;      // elements per tile (a multiple of every vector width)
constexpr int64_t kPwChunk = 16384;   // elements per parallel chunk (fixed: determinism)

// n elements of dtype E at p (stride in elements) into out, converted to M; the dtype switch is
// taken once per tile, so the loops below are plain typed loops.
template <class E, class M>
inline void gather_typed(const char* p, int64_t stride, int64_t n, M* out) {
  const E* e = reinterpret_cast<const E*>(p);
  if (stride == 1) {
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<M>(e[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<M>(e[i * stride]);
  }
}
template <class M>
inline void gather_as(const char* p, c10::ScalarType st, int64_t stride, int64_t n, M* out) {
  AT_DISPATCH_ALL_TYPES_AND3(at::kHalf, at::kBFloat16, at::kBool, st, "lossext_gather",
                             [&] { gather_typed<scalar_t, M>(p, stride, n, out); });
}
template <class E, class M>
inline void scatter_typed(char* p, int64_t stride, int64_t n, const M* in) {
  E* e = reinterpret_cast<E*>(p);
  if (stride == 1) {
    for (int64_t i = 0; i < n; ++i) e[i] = static_cast<E>(in[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) e[i * stride] = static_cast<E>(in[i]);
  }
}
template <class M>
inline void scatter_as(char* p, c10::ScalarType st, int64_t stride, int64_t n, const M* in) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, st, "lossext_scatter",
                                  [&] { scatter_typed<scalar_t, M>(p, stride, n, in); });
}

// What a chunk hands back: its loss sum and, for a functor with domain checks, how many of its
// elements failed each check. Counts are integers held exactly in double.
template <int NC>
struct PwPartial {
  double loss = 0;
  double bad[NC] = {};
  PwPartial& operator+=(const PwPartial& o) {
    loss += o.loss;
    for (int c = 0; c < NC; ++c) bad[c] += o.bad[c];
    return *this;
  }
};

// kGrads = false: a kForwardReduce that writes no gradient (no_grad, evaluation): the functor's
// gradient math is dead code the compiler drops, and no scratch tile is stored to.
template <class F, class T, PwMode MODE, bool kGrads = true>
struct PointwiseLoop {
  using M = math_t<T>;
  using V = Vectorized<M>;
  // kC = 2 (complex operands, lossext/pointwise.h): each operand k is two "slots" (2k: real part,
  // 2k + 1: imaginary part), read and written as real strided operands; kIn / kG count slots.
  static constexpr int kC = pw_components_v<F>;
  static constexpr int kSlots = kPwMaxOperands * kC;
  static constexpr int kIn = F::kInputs * kC;
  static constexpr int kG = F::kGrads * kC;
  static constexpr int kB = pw_bad_size_v<F>;
  // Domain checks are counted in the forward modes only (torch's backwards do not check either).
  static constexpr bool kCount = pw_checks_v<F> > 0 && MODE != PwMode::kBackwardNone;
  static constexpr bool kSum = MODE == PwMode::kForwardReduce || MODE == PwMode::kForwardRows;
  static constexpr int nin = MODE == PwMode::kBackwardNone ? kIn + 1 : kIn;  // + grad_output
  static constexpr int nout = MODE == PwMode::kForwardNone ? 1 : (MODE == PwMode::kForwardRows || !kGrads ? 0 : kG);
  using Partial = PwPartial<kB>;

  const PointwiseArgs& a;
  const F f;
  const M scale;
  c10::ScalarType idt[kSlots], odt[kSlots];  // operand / output dtypes (kC = 2: of a component)
  int64_t isz[kSlots], osz[kSlots];          // their element sizes

  explicit PointwiseLoop(const PointwiseArgs& args) : a(args), f(args.params), scale(static_cast<M>(args.scale)) {
    for (int k = 0; k < kSlots; ++k) {
      idt[k] = kC == 2 ? pw_component_type(a.in_type(k / kC)) : a.in_type(k);
      odt[k] = kC == 2 ? pw_component_type(a.out_type(k / kC)) : a.out_type(k);
      isz[k] = static_cast<int64_t>(c10::elementSize(idt[k]));
      osz[k] = static_cast<int64_t>(c10::elementSize(odt[k]));
    }
  }
  // Operand k / output k is read / written in place: unit-stride and of the math type.
  bool native_in(int k) const { return std::is_same_v<T, M> && idt[k] == c10::CppTypeToScalarType<T>::value; }
  bool native_out(int k) const { return std::is_same_v<T, M> && odt[k] == c10::CppTypeToScalarType<T>::value; }

  // Operand / output base pointers (bytes) at the multi-index idx.
  void bases(const int64_t* idx, const char** ip, int64_t* is, char** op, int64_t* os) const {
    if constexpr (kC == 2) {
      complex_bases(idx, ip, is, op, os);
    } else {
      plain_bases(idx, ip, is, op, os);
    }
  }
  void plain_bases(const int64_t* idx, const char** ip, int64_t* is, char** op, int64_t* os) const {
    const int nd = a.ndim;
    for (int k = 0; k < nin; ++k) {
      int64_t off = 0;
      for (int d = 0; d < nd; ++d) off += idx[d] * a.in_strides[k][d];
      ip[k] = a.in[k] ? static_cast<const char*>(a.in[k]) + off * isz[k] : nullptr;
      is[k] = a.in_strides[k][nd - 1];
    }
    for (int k = 0; k < nout; ++k) {
      int64_t off = 0;
      for (int d = 0; d < nd; ++d) off += idx[d] * a.out_strides[k][d];
      op[k] = a.out[k] ? static_cast<char*>(a.out[k]) + off * osz[k] : nullptr;
      os[k] = a.out_strides[k][nd - 1];
    }
  }

  // kC = 2: slot j is component j % 2 of operand j / 2. A complex operand's component is a real
  // operand with twice its strides, offset by the component; a real operand's imaginary part (and
  // an absent operand's) is a constant (nullptr, see run_segment), as is a real output's.
  void complex_bases(const int64_t* idx, const char** ip, int64_t* is, char** op, int64_t* os) const {
    const int nd = a.ndim;
    for (int j = 0; j < nin; ++j) {
      const int k = j / kC, c = j % kC;
      const int64_t m = pw_is_complex(a.in_type(k)) ? 2 : 1;
      int64_t off = 0;
      for (int d = 0; d < nd; ++d) off += idx[d] * a.in_strides[k][d];
      const bool here = a.in[k] != nullptr && c < m;
      ip[j] = here ? static_cast<const char*>(a.in[k]) + (off * m + c) * isz[j] : nullptr;
      is[j] = here ? a.in_strides[k][nd - 1] * m : 0;
    }
    for (int j = 0; j < nout; ++j) {
      const int k = j / kC, c = j % kC;
      const int64_t m = pw_is_complex(a.out_type(k)) ? 2 : 1;
      int64_t off = 0;
      for (int d = 0; d < nd; ++d) off += idx[d] * a.out_strides[k][d];
      const bool here = a.out[k] != nullptr && c < m;
      op[j] = here ? static_cast<char*>(a.out[k]) + (off * m + c) * osz[j] : nullptr;
      os[j] = here ? a.out_strides[k][nd - 1] * m : 0;
    }
  }

  // The elements [begin, end) of the coalesced index space.
  Partial run(int64_t begin, int64_t end) const {
    const int nd = a.ndim;
    int64_t idx[kPwMaxDims];
    int64_t rem = begin;
    for (int d = nd - 1; d >= 0; --d) {
      idx[d] = rem % a.sizes[d];
      rem /= a.sizes[d];
    }
    Partial total;
    int64_t pos = begin;
    while (pos < end) {
      const int64_t len = std::min(a.sizes[nd - 1] - idx[nd - 1], end - pos);
      const char* ip[kSlots];
      int64_t is[kSlots];
      char* op[kSlots];
      int64_t os[kSlots];
      bases(idx, ip, is, op, os);
      total += run_segment(ip, is, op, os, len);
      pos += len;
      idx[nd - 1] += len;
      for (int d = nd - 1; d > 0 && idx[d] >= a.sizes[d]; --d) {
        idx[d] = 0;
        ++idx[d - 1];
      }
    }
    return total;
  }

  // kForwardRows: the rows [r0, r1); row r's sum times scale goes to out[0] at the row's offset.
  Partial run_rows(int64_t r0, int64_t r1) const {
    const int nd = a.ndim;
    const int64_t len = a.sizes[nd - 1];
    int64_t idx[kPwMaxDims] = {};
    int64_t rem = r0;
    for (int d = nd - 2; d >= 0; --d) {
      idx[d] = rem % a.sizes[d];
      rem /= a.sizes[d];
    }
    T* out = static_cast<T*>(a.out[0]);
    Partial total;
    for (int64_t r = r0; r < r1; ++r) {
      const char* ip[kSlots];
      int64_t is[kSlots];
      bases(idx, ip, is, nullptr, nullptr);
      const Partial p = run_segment(ip, is, nullptr, nullptr, len);
      int64_t off = 0;
      for (int d = 0; d < nd - 1; ++d) off += idx[d] * a.out_strides[0][d];
      out[off] = static_cast<T>(p.loss * a.scale);
      for (int c = 0; c < kB; ++c) total.bad[c] += p.bad[c];
      for (int d = nd - 2; d >= 0; --d) {  // next row
        if (++idx[d] < a.sizes[d] || d == 0) break;
        idx[d] = 0;
      }
    }
    return total;
  }

  Partial run_segment(const char* const* ip, const int64_t* is, char* const* op, const int64_t* os,
                      int64_t len) const {
    alignas(64) M inbuf[kSlots][kPwTile];
    alignas(64) M outbuf[kSlots][kPwTile];
    const M* src[kSlots];
    bool gather[kSlots];
    for (int k = 0; k < nin; ++k) {
      gather[k] = false;
      if (ip[k] == nullptr || is[k] == 0) {  // constant over the run: fill once
        // Absent: 1 (a missing weight); kC = 2: an imaginary part that is not stored is 0.
        const M v = ip[k] ? load_as<M>(ip[k], 0, idt[k]) : M((kC == 2 && k % 2 == 1) ? 0 : 1);
        std::fill(inbuf[k], inbuf[k] + std::min(len, kPwTile), v);
        src[k] = inbuf[k];
      } else if (native_in(k) && is[k] == 1) {
        src[k] = reinterpret_cast<const M*>(ip[k]);
      } else {
        gather[k] = true;
        src[k] = inbuf[k];
      }
    }
    bool direct[kSlots];
    for (int k = 0; k < nout; ++k) direct[k] = op[k] && native_out(k) && os[k] == 1;
    Partial total;
    for (int64_t t0 = 0; t0 < len; t0 += kPwTile) {
      const int64_t n = std::min(kPwTile, len - t0);
      const M* s[kSlots];
      for (int k = 0; k < nin; ++k) {
        if (gather[k]) {
          gather_as<M>(ip[k] + t0 * is[k] * isz[k], idt[k], is[k], n, inbuf[k]);
          s[k] = inbuf[k];
        } else {
          s[k] = (src[k] == inbuf[k]) ? inbuf[k] : src[k] + t0;
        }
      }
      M* d[kSlots];
      // An absent output is written to its scratch tile and dropped: no per-vector test.
      for (int k = 0; k < nout; ++k) d[k] = direct[k] ? reinterpret_cast<M*>(op[k]) + t0 : outbuf[k];
      total += tile(s, d, n);
      for (int k = 0; k < nout; ++k) {
        if (!op[k] || direct[k]) continue;
        scatter_as<M>(op[k] + t0 * os[k] * osz[k], odt[k], os[k], n, outbuf[k]);
      }
    }
    return total;
  }

  // One tile: whole vectors, then the ragged end as one masked step.
  Partial tile(const M* const* s, M* const* d, int64_t n) const {
    V acc(0);
    V bacc[kB];
    for (int c = 0; c < kB; ++c) bacc[c] = V(0);
    int64_t j = 0;
    for (; j + V::size() <= n; j += V::size()) step<true>(s, d, j, V::size(), acc, bacc);
    if (j < n) step<false>(s, d, j, n - j, acc, bacc);
    Partial p;
    if constexpr (kSum) p.loss = hsum(acc);
    if constexpr (kCount) {
      for (int c = 0; c < kB; ++c) p.bad[c] = hsum(bacc[c]);
    }
    return p;
  }

  template <bool FULL>
  static V load(const M* p, int64_t cnt) {
    if constexpr (FULL) return V::loadu(p);
    else return V::loadu(p, cnt);
  }
  template <bool FULL>
  static void store(M* p, const V& v, int64_t cnt) {
    if constexpr (FULL) v.store(p);
    else v.store(p, cnt);
  }
  template <bool FULL>
  static V keep(const V& v, int64_t cnt) {  // v with the lanes past cnt zeroed
    if constexpr (FULL) return v;
    else return vfirst(V(0), v, cnt);
  }

  template <bool FULL>
  void step(const M* const* s, M* const* d, int64_t j, int64_t cnt, V& acc, V* bacc) const {
    V x[kIn];
    V g[kG];
    V bad[kB];
    for (int k = 0; k < kIn; ++k) x[k] = load<FULL>(s[k] + j, cnt);
    const V loss = pw_eval(f, x, g, bad);
    if constexpr (MODE == PwMode::kForwardNone) store<FULL>(d[0] + j, loss, cnt);
    if constexpr (kSum) acc = acc + keep<FULL>(loss, cnt);
    if constexpr (MODE == PwMode::kForwardReduce && kGrads) {
      const V vs(scale);
      for (int k = 0; k < kG; ++k) store<FULL>(d[k] + j, g[k] * vs, cnt);
    }
    if constexpr (MODE == PwMode::kBackwardNone) {
      const V go = load<FULL>(s[kIn] + j, cnt) * V(scale);
      for (int k = 0; k < kG; ++k) store<FULL>(d[k] + j, g[k] * go, cnt);
    }
    if constexpr (kCount) {
      for (int c = 0; c < kB; ++c) bacc[c] = bacc[c] + keep<FULL>(bad[c], cnt);
    }
  }
};

template <class F, class T, PwMode MODE, bool kGrads = true>
void pointwise_cpu_mode(const PointwiseArgs& a) {
  using Loop = PointwiseLoop<F, T, MODE, kGrads>;
  using Partial = typename Loop::Partial;
  const Loop loop(a);
  Partial total;
  if constexpr (MODE == PwMode::kForwardRows) {
    int64_t rows = 1;
    for (int d = 0; d < a.ndim - 1; ++d) rows *= a.sizes[d];
    const int64_t rows_per_chunk = std::max<int64_t>(1, kPwChunk / std::max<int64_t>(1, a.sizes[a.ndim - 1]));
    total = chunked_reduce<Partial>(rows, rows_per_chunk, [&](int64_t b, int64_t e) { return loop.run_rows(b, e); });
  } else if constexpr (Loop::kSum || Loop::kCount) {
    total = chunked_reduce<Partial>(a.numel, kPwChunk, [&](int64_t b, int64_t e) { return loop.run(b, e); });
  } else {
    chunked_for(a.numel, kPwChunk, [&](int64_t b, int64_t e) { loop.run(b, e); });
  }
  if constexpr (MODE == PwMode::kForwardReduce) *static_cast<T*>(a.loss) = static_cast<T>(total.loss * a.scale);
  if constexpr (Loop::kCount) {
    for (int c = 0; c < pw_checks_v<F>; ++c) {
      TORCH_CHECK(total.bad[c] == 0, F::check_message(c), " (", static_cast<int64_t>(total.bad[c]), " of ",
                  a.numel, " elements are not)");
    }
  }
}

template <class F, class T>
void pointwise_cpu(const PointwiseArgs& a) {
  switch (a.mode) {
    case PwMode::kForwardNone: return pointwise_cpu_mode<F, T, PwMode::kForwardNone>(a);
    case PwMode::kForwardReduce: {
      bool grads = false;
      for (int k = 0; k < F::kGrads; ++k) grads = grads || a.out[k] != nullptr;  // (per operand)
      return grads ? pointwise_cpu_mode<F, T, PwMode::kForwardReduce>(a)
                   : pointwise_cpu_mode<F, T, PwMode::kForwardReduce, false>(a);
    }
    case PwMode::kBackwardNone: return pointwise_cpu_mode<F, T, PwMode::kBackwardNone>(a);
    case PwMode::kForwardRows: return pointwise_cpu_mode<F, T, PwMode::kForwardRows>(a);
  }
}

template <class F>
void pointwise_cpu_dispatch(const PointwiseArgs& a) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "lossext_pointwise_cpu", [&] { pointwise_cpu<F, scalar_t>(a); });
}

}  // namespace lossext::CPU_CAPABILITY

// Defines this ISA's loop for Functor and registers it into `stub`.
#define LOSSEXT_CPU_POINTWISE(stub, Functor) \
  LOSSEXT_REGISTER_CPU(stub, &::lossext::CPU_CAPABILITY::pointwise_cpu_dispatch<Functor>)
