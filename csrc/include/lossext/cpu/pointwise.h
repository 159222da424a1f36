// The CPU pointwise driver: one loop for every pointwise loss (ISA-compiled code only).
// A kernel file instantiates it with LOSSEXT_CPU_POINTWISE(stub, Functor).
//
// Elements are visited in fixed chunks (lossext/cpu/reduce.h) so sums are deterministic. Inside a
// chunk the coalesced index space is cut into runs along the innermost dimension; a run is cut
// into tiles of kTile elements. For each tile an operand is read straight from memory when it is
// unit-stride and already in the math type (the common float32/float64 case), and otherwise
// gathered / converted into a small buffer first (strided, broadcast, half types). The functor
// then runs on whole vectors.
#pragma once

#include <ATen/Dispatch.h>
#include <lossext/common.h>
#include <lossext/cpu/reduce.h>
#include <lossext/cpu/vec.h>
#include <lossext/dispatch.h>
#include <lossext/pointwise.h>
#include <lossext/vmath.h>

#include <algorithm>

namespace lossext::CPU_CAPABILITY {

constexpr int64_t kPwTile = 256;      // elements per tile (a multiple of every vector width)
constexpr int64_t kPwChunk = 16384;   // elements per parallel chunk (fixed: determinism)

template <class F, class T>
struct PointwiseLoop {
  using M = math_t<T>;
  using V = Vectorized<M>;
  static constexpr int kIn = F::kInputs;
  static constexpr int kG = F::kGrads;

  const PointwiseArgs& a;
  const F f;
  const int nin;   // kIn, or kIn + 1 with grad_output
  const int nout;  // outputs written per element
  const M scale;

  explicit PointwiseLoop(const PointwiseArgs& args)
      : a(args),
        f(args.params),
        nin(args.mode == PwMode::kBackwardNone ? kIn + 1 : kIn),
        nout(args.mode == PwMode::kForwardNone ? 1 : kG),
        scale(static_cast<M>(args.scale)) {}

  // Sum of the losses of the elements [begin, end) of the coalesced index space.
  double run(int64_t begin, int64_t end) const {
    const int nd = a.ndim;
    int64_t idx[kPwMaxDims];
    int64_t rem = begin;
    for (int d = nd - 1; d >= 0; --d) {
      idx[d] = rem % a.sizes[d];
      rem /= a.sizes[d];
    }
    double total = 0;
    int64_t pos = begin;
    while (pos < end) {
      const int64_t len = std::min(a.sizes[nd - 1] - idx[nd - 1], end - pos);
      const char* ip[kPwMaxOperands];
      int64_t is[kPwMaxOperands];
      char* op[kPwMaxOperands];
      int64_t os[kPwMaxOperands];
      for (int k = 0; k < nin; ++k) {
        int64_t off = 0;
        for (int d = 0; d < nd; ++d) off += idx[d] * a.in_strides[k][d];
        ip[k] = a.in[k] ? static_cast<const char*>(a.in[k]) + off * int64_t(sizeof(T)) : nullptr;
        is[k] = a.in_strides[k][nd - 1];
      }
      for (int k = 0; k < nout; ++k) {
        int64_t off = 0;
        for (int d = 0; d < nd; ++d) off += idx[d] * a.out_strides[k][d];
        op[k] = a.out[k] ? static_cast<char*>(a.out[k]) + off * int64_t(sizeof(T)) : nullptr;
        os[k] = a.out_strides[k][nd - 1];
      }
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

  double run_segment(const char* const* ip, const int64_t* is, char* const* op, const int64_t* os,
                     int64_t len) const {
    alignas(64) M inbuf[kPwMaxOperands][kPwTile];
    alignas(64) M outbuf[kPwMaxOperands][kPwTile];
    const M* src[kPwMaxOperands];
    bool gather[kPwMaxOperands];
    for (int k = 0; k < nin; ++k) {
      gather[k] = false;
      if (ip[k] == nullptr || is[k] == 0) {  // constant over the run: fill once
        const M v = ip[k] ? static_cast<M>(*reinterpret_cast<const T*>(ip[k])) : M(1);
        std::fill(inbuf[k], inbuf[k] + std::min(len, kPwTile), v);
        src[k] = inbuf[k];
      } else if (std::is_same_v<T, M> && is[k] == 1) {
        src[k] = reinterpret_cast<const M*>(ip[k]);
      } else {
        gather[k] = true;
        src[k] = inbuf[k];
      }
    }
    double total = 0;
    for (int64_t t0 = 0; t0 < len; t0 += kPwTile) {
      const int64_t n = std::min(kPwTile, len - t0);
      const M* s[kPwMaxOperands];
      for (int k = 0; k < nin; ++k) {
        if (gather[k]) {
          const T* p = reinterpret_cast<const T*>(ip[k]) + (t0 * is[k]);
          if (is[k] == 1) {
            for (int64_t i = 0; i < n; ++i) inbuf[k][i] = static_cast<M>(p[i]);
          } else {
            for (int64_t i = 0; i < n; ++i) inbuf[k][i] = static_cast<M>(p[i * is[k]]);
          }
          s[k] = inbuf[k];
        } else {
          s[k] = (src[k] == inbuf[k]) ? inbuf[k] : src[k] + t0;
        }
      }
      M* d[kPwMaxOperands];
      bool direct[kPwMaxOperands];
      for (int k = 0; k < nout; ++k) {
        direct[k] = op[k] && std::is_same_v<T, M> && os[k] == 1;
        d[k] = direct[k] ? reinterpret_cast<M*>(op[k]) + t0 : outbuf[k];
      }
      total += tile(s, d, n);
      for (int k = 0; k < nout; ++k) {
        if (!op[k] || direct[k]) continue;
        T* p = reinterpret_cast<T*>(op[k]) + t0 * os[k];
        if (os[k] == 1) {
          for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(outbuf[k][i]);
        } else {
          for (int64_t i = 0; i < n; ++i) p[i * os[k]] = static_cast<T>(outbuf[k][i]);
        }
      }
    }
    return total;
  }

  // The vector loop over one tile; returns the tile's loss sum (reduce mode).
  double tile(const M* const* s, M* const* d, int64_t n) const {
    V acc(0);
    const V vscale(scale);
    for (int64_t j = 0; j < n; j += V::size()) {
      const int64_t cnt = std::min<int64_t>(V::size(), n - j);
      V x[kIn];
      V g[kG];
      for (int k = 0; k < kIn; ++k) x[k] = cnt == V::size() ? V::loadu(s[k] + j) : V::loadu(s[k] + j, cnt);
      const V loss = f(x, g);
      if (a.mode == PwMode::kForwardNone) {
        store(d[0] + j, loss, cnt);
      } else if (a.mode == PwMode::kForwardReduce) {
        acc = acc + (cnt == V::size() ? loss : V::set(V(0), loss, cnt));
        for (int k = 0; k < kG; ++k)
          if (a.out[k]) store(d[k] + j, g[k] * vscale, cnt);
      } else {
        const V go = (cnt == V::size() ? V::loadu(s[kIn] + j) : V::loadu(s[kIn] + j, cnt)) * vscale;
        for (int k = 0; k < kG; ++k)
          if (a.out[k]) store(d[k] + j, g[k] * go, cnt);
      }
    }
    return a.mode == PwMode::kForwardReduce ? hsum(acc) : 0.0;
  }

  static void store(M* p, const V& v, int64_t cnt) {
    cnt == V::size() ? v.store(p) : v.store(p, cnt);
  }
};

template <class F, class T>
void pointwise_cpu(const PointwiseArgs& a) {
  PointwiseLoop<F, T> loop(a);
  if (a.mode == PwMode::kForwardReduce) {
    const double sum = chunked_reduce<double>(a.numel, kPwChunk,
                                              [&](int64_t b, int64_t e) { return loop.run(b, e); });
    *static_cast<T*>(a.loss) = static_cast<T>(sum * a.scale);
  } else {
    chunked_for(a.numel, kPwChunk, [&](int64_t b, int64_t e) { loop.run(b, e); });
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
