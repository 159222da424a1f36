// The CUDA pointwise driver: one set of kernels for every pointwise loss.
// A .cu file instantiates it with LOSSEXT_CUDA_POINTWISE(stub, Functor).
//
// Fast path (PointwiseArgs::contiguous): one flat index; each operand is unit-stride, a scalar
// broadcast (read once per thread) or absent; 16-byte vector loads and stores when every pointer
// is aligned. General path: per-element offsets from the coalesced sizes and strides. An operand
// or output of another dtype than the computation's (an integer target, a float gradient of a
// half operand) is read / written element by element with a conversion (lossext/convert.h).
// Reduce mode: each thread accumulates in double, each block writes one partial, and a second
// one-block kernel adds the partials in order (deterministic; no atomics).
// Rows mode (per-row sums over the innermost dimension): a warp per row, or a whole block per row
// when rows are long; lanes stride over the row, accumulate in double and meet in a fixed shuffle
// tree (deterministic; no atomics).
// Complex operands (a functor with kComponents = 2, lossext/pointwise.h) take the general path only,
// each component loaded and stored as a real value (pointwise_complex_kernel); no rows mode.
// Domain checks (lossext/pointwise.h) are not counted here: raising would need a host sync, so
// the functor's own device-side result for failing elements (e.g. NaN) stands.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <lossext/common.h>
#include <lossext/convert.h>
#include <lossext/cuda/utils.cuh>
#include <lossext/dispatch.h>
#include <lossext/pointwise.h>
#include <lossext/vmath.h>

namespace lossext::cuda {

constexpr int kPwThreads = 256;
constexpr int kPwBlocksPerSm = 8;

enum OperandKind : int { kAbsent = 0, kUnit = 1, kScalar = 2, kConvert = 3 };  // kConvert: unit, other dtype

// Element i of operand k (an offset in its own elements), in the math type.
template <class T, class M>
__device__ __forceinline__ M pw_load(const PointwiseArgs& a, int k, int64_t i) {
  if (a.in[k] == nullptr) return M(1);
  const c10::ScalarType st = a.in_type(k);
  if (st == c10::CppTypeToScalarType<T>::value) return static_cast<M>(static_cast<const T*>(a.in[k])[i]);
  return load_as<M>(a.in[k], i, st);
}
template <class T, class M>
__device__ __forceinline__ void pw_store(const PointwiseArgs& a, int k, int64_t i, M v) {
  const c10::ScalarType st = a.out_type(k);
  if (st == c10::CppTypeToScalarType<T>::value) static_cast<T*>(a.out[k])[i] = static_cast<T>(v);
  else store_as<M>(a.out[k], i, st, v);
}

template <class T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

template <class F, class T, PwMode MODE, int VEC>
__global__ void __launch_bounds__(kPwThreads)
pointwise_contig_kernel(const PointwiseArgs a, const F f, double* __restrict__ partials) {
  using M = at::opmath_type<T>;
  constexpr int kIn = F::kInputs, kG = F::kGrads;
  constexpr int nin = MODE == PwMode::kBackwardNone ? kIn + 1 : kIn;
  constexpr int nout = MODE == PwMode::kForwardNone ? 1 : kG;
  const M scale = static_cast<M>(a.scale);
  const T* in[nin];
  M scalar[nin];
  int kind[nin];
#pragma unroll
  for (int k = 0; k < nin; ++k) {
    in[k] = static_cast<const T*>(a.in[k]);
    const bool native = a.in_type(k) == c10::CppTypeToScalarType<T>::value;
    kind[k] = in[k] == nullptr ? kAbsent : (a.in_strides[k][0] == 0 ? kScalar : (native ? kUnit : kConvert));
    scalar[k] = kind[k] == kScalar ? pw_load<T, M>(a, k, 0) : M(1);
  }
  T* out[nout];
  bool onative[nout];
#pragma unroll
  for (int k = 0; k < nout; ++k) {
    out[k] = static_cast<T*>(a.out[k]);
    onative[k] = a.out_type(k) == c10::CppTypeToScalarType<T>::value;
  }

  double acc = 0;
  const int64_t n = a.numel;
  const int64_t nvec = n / VEC;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  auto body = [&](int64_t base, int cnt) {
    // cnt == VEC: vector access at element `base`; cnt == 1: the single element `base`.
    M x[VEC][nin];
#pragma unroll
    for (int k = 0; k < nin; ++k) {
      if (kind[k] == kUnit) {
        if (cnt == VEC) {
          const Pack<T, VEC> p = *reinterpret_cast<const Pack<T, VEC>*>(in[k] + base);
#pragma unroll
          for (int v = 0; v < VEC; ++v) x[v][k] = static_cast<M>(p.v[v]);
        } else {
          x[0][k] = static_cast<M>(in[k][base]);
        }
      } else if (kind[k] == kConvert) {
#pragma unroll
        for (int v = 0; v < VEC; ++v)
          if (v < cnt) x[v][k] = load_as<M>(a.in[k], base + v, a.in_type(k));
      } else {
#pragma unroll
        for (int v = 0; v < VEC; ++v) x[v][k] = scalar[k];
      }
    }
    M o[nout][VEC];  // in the math type: an output of another dtype is rounded once, at its store
#pragma unroll
    for (int v = 0; v < VEC; ++v) {
      if (v >= cnt) break;
      M xi[kIn];
      M g[kG];
      M bad[pw_bad_size_v<F>];
#pragma unroll
      for (int k = 0; k < kIn; ++k) xi[k] = x[v][k];
      const M loss = pw_eval(f, xi, g, bad);
      if constexpr (MODE == PwMode::kForwardNone) {
        o[0][v] = loss;
      } else if constexpr (MODE == PwMode::kForwardReduce) {
        acc += static_cast<double>(loss);
#pragma unroll
        for (int k = 0; k < kG; ++k) o[k][v] = g[k] * scale;
      } else {
#pragma unroll
        for (int k = 0; k < kG; ++k) o[k][v] = g[k] * (x[v][kIn] * scale);
      }
    }
#pragma unroll
    for (int k = 0; k < nout; ++k) {
      if (out[k] == nullptr) continue;
      if (!onative[k]) {
#pragma unroll
        for (int v = 0; v < VEC; ++v)
          if (v < cnt) store_as<M>(a.out[k], base + v, a.out_type(k), o[k][v]);
      } else if (cnt == VEC) {
        Pack<T, VEC> pk;
#pragma unroll
        for (int v = 0; v < VEC; ++v) pk.v[v] = static_cast<T>(o[k][v]);
        *reinterpret_cast<Pack<T, VEC>*>(out[k] + base) = pk;
      } else {
        out[k][base] = static_cast<T>(o[k][0]);
      }
    }
  };
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < nvec; i += stride) body(i * VEC, VEC);
  for (int64_t i = nvec * VEC + int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) body(i, 1);
  if constexpr (MODE == PwMode::kForwardReduce) {
    acc = block_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
  }
}

template <class F, class T, PwMode MODE>
__global__ void __launch_bounds__(kPwThreads)
pointwise_strided_kernel(const PointwiseArgs a, const F f, double* __restrict__ partials) {
  using M = at::opmath_type<T>;
  constexpr int kIn = F::kInputs, kG = F::kGrads;
  constexpr int nin = MODE == PwMode::kBackwardNone ? kIn + 1 : kIn;
  constexpr int nout = MODE == PwMode::kForwardNone ? 1 : kG;
  const M scale = static_cast<M>(a.scale);
  double acc = 0;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < a.numel; i += stride) {
    int64_t ioff[nin] = {};
    int64_t ooff[nout] = {};
    int64_t rem = i;
    for (int d = a.ndim - 1; d >= 0; --d) {
      const int64_t q = rem / a.sizes[d];
      const int64_t id = rem - q * a.sizes[d];
      rem = q;
#pragma unroll
      for (int k = 0; k < nin; ++k) ioff[k] += id * a.in_strides[k][d];
#pragma unroll
      for (int k = 0; k < nout; ++k) ooff[k] += id * a.out_strides[k][d];
    }
    M x[nin];
#pragma unroll
    for (int k = 0; k < nin; ++k) x[k] = pw_load<T, M>(a, k, ioff[k]);
    M xi[kIn];
    M g[kG];
    M bad[pw_bad_size_v<F>];
#pragma unroll
    for (int k = 0; k < kIn; ++k) xi[k] = x[k];
    const M loss = pw_eval(f, xi, g, bad);
    if constexpr (MODE == PwMode::kForwardNone) {
      pw_store<T, M>(a, 0, ooff[0], loss);
    } else if constexpr (MODE == PwMode::kForwardReduce) {
      acc += static_cast<double>(loss);
#pragma unroll
      for (int k = 0; k < kG; ++k)
        if (a.out[k]) pw_store<T, M>(a, k, ooff[k], g[k] * scale);
    } else {
#pragma unroll
      for (int k = 0; k < kG; ++k)
        if (a.out[k]) pw_store<T, M>(a, k, ooff[k], g[k] * (x[kIn] * scale));
    }
  }
  if constexpr (MODE == PwMode::kForwardReduce) {
    acc = block_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
  }
}

// Component c of element i of operand k (an offset in complex elements when it is complex), in the
// math type: a real operand's imaginary part is 0, an absent operand is 1 + 0i.
template <class M>
__device__ __forceinline__ M pw_load_component(const PointwiseArgs& a, int k, int64_t i, int c) {
  if (a.in[k] == nullptr) return M(c == 0 ? 1 : 0);
  const c10::ScalarType st = a.in_type(k);
  if (pw_is_complex(st)) return load_as<M>(a.in[k], 2 * i + c, pw_component_type(st));
  return c == 0 ? load_as<M>(a.in[k], i, st) : M(0);
}
// Element i of output k from its two components (a real output keeps the real one).
template <class M>
__device__ __forceinline__ void pw_store_components(const PointwiseArgs& a, int k, int64_t i, M re, M im) {
  const c10::ScalarType st = a.out_type(k);
  if (pw_is_complex(st)) {
    store_as<M>(a.out[k], 2 * i, pw_component_type(st), re);
    store_as<M>(a.out[k], 2 * i + 1, pw_component_type(st), im);
  } else {
    store_as<M>(a.out[k], i, st, re);
  }
}

// kComponents = 2: the strided kernel over (re, im) components (the loss and grad_output are real).
template <class F, class T, PwMode MODE>
__global__ void __launch_bounds__(kPwThreads)
pointwise_complex_kernel(const PointwiseArgs a, const F f, double* __restrict__ partials) {
  using M = at::opmath_type<T>;
  constexpr int kIn = F::kInputs, kG = F::kGrads;
  constexpr int nin = MODE == PwMode::kBackwardNone ? kIn + 1 : kIn;
  constexpr int nout = MODE == PwMode::kForwardNone ? 1 : kG;
  const M scale = static_cast<M>(a.scale);
  double acc = 0;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < a.numel; i += stride) {
    int64_t ioff[nin] = {};
    int64_t ooff[nout] = {};
    int64_t rem = i;
    for (int d = a.ndim - 1; d >= 0; --d) {
      const int64_t q = rem / a.sizes[d];
      const int64_t id = rem - q * a.sizes[d];
      rem = q;
#pragma unroll
      for (int k = 0; k < nin; ++k) ioff[k] += id * a.in_strides[k][d];
#pragma unroll
      for (int k = 0; k < nout; ++k) ooff[k] += id * a.out_strides[k][d];
    }
    M x[2 * kIn];
    M g[2 * kG];
    M bad[pw_bad_size_v<F>];
#pragma unroll
    for (int k = 0; k < kIn; ++k) {
      x[2 * k] = pw_load_component<M>(a, k, ioff[k], 0);
      x[2 * k + 1] = pw_load_component<M>(a, k, ioff[k], 1);
    }
    const M loss = pw_eval(f, x, g, bad);
    if constexpr (MODE == PwMode::kForwardNone) {
      store_as<M>(a.out[0], ooff[0], a.out_type(0), loss);
    } else {
      M s = scale;
      if constexpr (MODE == PwMode::kForwardReduce) acc += static_cast<double>(loss);
      if constexpr (MODE == PwMode::kBackwardNone) s = pw_load_component<M>(a, kIn, ioff[kIn], 0) * scale;
#pragma unroll
      for (int k = 0; k < kG; ++k)
        if (a.out[k]) pw_store_components<M>(a, k, ooff[k], g[2 * k] * s, g[2 * k + 1] * s);
    }
  }
  if constexpr (MODE == PwMode::kForwardReduce) {
    acc = block_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
  }
}

// kForwardRows: out[0][row] = scale * sum of the row's losses. A group of TPR consecutive threads
// (32: a warp; kPwThreads: the block) owns a row at a time; `row` is the same for every thread of a
// group, so each group runs its warp_sum / block_sum with all of its threads.
template <class F, class T, int TPR>
__global__ void __launch_bounds__(kPwThreads)
pointwise_rows_kernel(const PointwiseArgs a, const F f, int64_t rows) {
  using M = at::opmath_type<T>;
  constexpr int kIn = F::kInputs, kG = F::kGrads;
  constexpr int kGroups = kPwThreads / TPR;  // groups per block
  const int nd = a.ndim;
  const int64_t len = a.sizes[nd - 1];
  const int lane = threadIdx.x % TPR;
  for (int64_t row = int64_t(blockIdx.x) * kGroups + threadIdx.x / TPR; row < rows;
       row += int64_t(gridDim.x) * kGroups) {
    int64_t ioff[kIn] = {};
    int64_t ooff = 0;
    int64_t rem = row;
    for (int d = nd - 2; d >= 0; --d) {
      const int64_t q = rem / a.sizes[d];
      const int64_t id = rem - q * a.sizes[d];
      rem = q;
#pragma unroll
      for (int k = 0; k < kIn; ++k) ioff[k] += id * a.in_strides[k][d];
      ooff += id * a.out_strides[0][d];
    }
    double acc = 0;
    for (int64_t c = lane; c < len; c += TPR) {
      M x[kIn];
      M g[kG];
      M bad[pw_bad_size_v<F>];
#pragma unroll
      for (int k = 0; k < kIn; ++k) x[k] = pw_load<T, M>(a, k, ioff[k] + c * a.in_strides[k][nd - 1]);
      acc += static_cast<double>(pw_eval(f, x, g, bad));
    }
    if constexpr (TPR == 32) {
      acc = warp_sum(acc);
    } else {
      acc = block_sum(acc);
    }
    if (lane == 0) static_cast<T*>(a.out[0])[ooff] = static_cast<T>(acc * a.scale);
  }
}

template <class T>
inline bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15) == 0;
}

template <class F, class T, PwMode MODE>
void pointwise_launch(const PointwiseArgs& a, const at::Tensor& partials, int64_t grid) {
  const F f(a.params);
  auto stream = c10::cuda::getCurrentCUDAStream();
  double* part = MODE == PwMode::kForwardReduce ? partials.data_ptr<double>() : nullptr;
  if constexpr (pw_components_v<F> == 2) {
    pointwise_complex_kernel<F, T, MODE><<<grid, kPwThreads, 0, stream>>>(a, f, part);
  } else if (a.contiguous) {
    constexpr int VEC = 16 / sizeof(T);
    bool vec_ok = true;
    for (int k = 0; k < kPwMaxOperands; ++k) {  // only operands of dtype T are read in packs
      if (a.in[k] && a.in_type(k) == a.dtype && !aligned16<T>(a.in[k])) vec_ok = false;
      if (a.out[k] && a.out_type(k) == a.dtype && !aligned16<T>(a.out[k])) vec_ok = false;
    }
    if (vec_ok) {
      pointwise_contig_kernel<F, T, MODE, VEC><<<grid, kPwThreads, 0, stream>>>(a, f, part);
    } else {
      pointwise_contig_kernel<F, T, MODE, 1><<<grid, kPwThreads, 0, stream>>>(a, f, part);
    }
  } else {
    pointwise_strided_kernel<F, T, MODE><<<grid, kPwThreads, 0, stream>>>(a, f, part);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <class F>
void pointwise_cuda(const PointwiseArgs& a) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "lossext_pointwise_cuda", [&] {
    int dev = 0;
    C10_CUDA_CHECK(cudaGetDevice(&dev));
    const c10::Device device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(dev));
    const int64_t per_thread = a.contiguous ? 16 / sizeof(scalar_t) : 1;
    const int64_t grid = grid_for(a.numel, kPwThreads * per_thread, kPwBlocksPerSm);
    switch (a.mode) {
      case PwMode::kForwardNone:
        if (a.numel > 0) pointwise_launch<F, scalar_t, PwMode::kForwardNone>(a, at::Tensor(), grid);
        break;
      case PwMode::kBackwardNone:
        if (a.numel > 0) pointwise_launch<F, scalar_t, PwMode::kBackwardNone>(a, at::Tensor(), grid);
        break;
      case PwMode::kForwardRows: {
        if constexpr (pw_components_v<F> == 2) {
          TORCH_CHECK(false, "lossext: per-row sums of complex operands are not supported");
        } else {
          int64_t rows = 1;
          for (int d = 0; d < a.ndim - 1; ++d) rows *= a.sizes[d];
          if (rows == 0) break;
          const F f(a.params);
          auto stream = c10::cuda::getCurrentCUDAStream();
          if (a.sizes[a.ndim - 1] >= 1024) {  // long rows: a block per row
            const int64_t g = grid_for(rows, 1, kPwBlocksPerSm);
            pointwise_rows_kernel<F, scalar_t, kPwThreads><<<g, kPwThreads, 0, stream>>>(a, f, rows);
          } else {  // a warp per row
            const int64_t g = grid_for(rows, kPwThreads / 32, kPwBlocksPerSm);
            pointwise_rows_kernel<F, scalar_t, 32><<<g, kPwThreads, 0, stream>>>(a, f, rows);
          }
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        }
        break;
      }
      case PwMode::kForwardReduce: {
        at::Tensor partials = partials_buffer(grid, device);
        if (a.numel > 0) pointwise_launch<F, scalar_t, PwMode::kForwardReduce>(a, partials, grid);
        finalize_sum<scalar_t>(partials.data_ptr<double>(), a.numel > 0 ? grid : 0, a.scale, nullptr,
                               static_cast<scalar_t*>(a.loss));
        break;
      }
    }
  });
}

}  // namespace lossext::cuda

// Defines the CUDA kernels for Functor and registers them into `stub`.
#define LOSSEXT_CUDA_POINTWISE(stub, Functor) \
  LOSSEXT_REGISTER_CUDA(stub, &::lossext::cuda::pointwise_cuda<Functor>)
