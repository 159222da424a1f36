// CUDA building blocks of the row-wise losses (see lossext/rowwise.h): the device-side pre-pass
// (the mean's denominator and the summed class weights, without a host sync), row iteration with
// 16-byte packs, and group reductions of an online log-sum-exp plus linear sums. Every reduction is
// a fixed tree (warp shuffles, then shared memory across warps): the same inputs give the same bits.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <lossext/common.h>
#include <lossext/cuda/pointwise.cuh>
#include <lossext/cuda/utils.cuh>
#include <lossext/rowwise.h>

#include <cstdint>
#include <type_traits>

namespace lossext::cuda {

// ---- device-side constants: {denominator of the mean, sum of the class weights} ----------------

template <class T>
__global__ void rowwise_prepass_kernel(const RowwiseArgs a, double* __restrict__ partials) {
  double den = 0, ws = 0;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (!a.prob) {
    const int64_t ns = a.N * a.S;
    for (int64_t i = first; i < ns; i += stride) {
      const int64_t n = i / a.S;
      den += static_cast<double>(denominator_weight<T>(a, sample_of(a, n, i - n * a.S)));
    }
  }
  if (a.weight) {
    const T* w = static_cast<const T*>(a.weight);
    for (int64_t c = first; c < a.C; c += stride) ws += static_cast<double>(w[c]);
  }
  den = block_sum(den);
  ws = block_sum(ws);
  if (threadIdx.x == 0) {
    partials[2 * blockIdx.x] = den;
    partials[2 * blockIdx.x + 1] = ws;
  }
}

// out = {denominator, W}: the partials added in a fixed order by one block. (A template, like every
// kernel in this header, so that the .cu files including it share one definition.)
template <class T>
__global__ void rowwise_prepass_finalize(const double* __restrict__ partials, int64_t nblocks, RowwiseArgs a,
                                         double* __restrict__ out) {
  double den = 0, ws = 0;
  for (int64_t b = threadIdx.x; b < nblocks; b += blockDim.x) {
    den += partials[2 * b];
    ws += partials[2 * b + 1];
  }
  den = block_sum(den);
  ws = block_sum(ws);
  if (threadIdx.x == 0) {
    out[0] = a.prob ? prob_mean_denominator(a) : den;
    out[1] = a.weight ? ws : static_cast<double>(a.C);
  }
}

// Launches the pre-pass on the current stream; returns the 2-double device buffer {denominator, W}.
// Class targets outside [0, C) weigh 0 here (they cannot raise on the device; see rowwise.h).
inline at::Tensor rowwise_prepass(const RowwiseArgs& a, c10::Device device) {
  at::Tensor out = at::empty({2}, at::TensorOptions().dtype(at::kDouble).device(device));
  const int64_t work = std::max<int64_t>(a.prob ? 0 : a.N * a.S, a.weight ? a.C : 0);
  const int64_t grid = grid_for(work, 256, 4);
  at::Tensor partials = partials_buffer(2 * grid, device);
  auto stream = c10::cuda::getCurrentCUDAStream();
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "rowwise_prepass", [&] {
    rowwise_prepass_kernel<scalar_t><<<grid, 256, 0, stream>>>(a, partials.data_ptr<double>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    rowwise_prepass_finalize<scalar_t><<<1, 256, 0, stream>>>(partials.data_ptr<double>(), grid, a,
                                                              out.data_ptr<double>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

// The gradient scale of sample (n, s): inv (1/denominator or 1), times grad_output in the backward.
template <class T, class M = typename RowMath<T>::type>
__device__ __forceinline__ M row_scale(const RowwiseArgs& a, int64_t n, int64_t s, double inv) {
  if (a.mode == RowMode::kForward) return static_cast<M>(inv);
  const T* go = static_cast<const T*>(a.grad_output);
  const T g = a.reduction == Reduction::None ? go[n * a.gN + s * a.gS] : go[0];
  return static_cast<M>(static_cast<double>(static_cast<M>(g)) * inv);
}

// ---- math --------------------------------------------------------------------------------------

__device__ __forceinline__ float dev_exp(float x) { return __expf(x); }  // ~2 ulp near 0; exp(-inf) = 0
__device__ __forceinline__ double dev_exp(double x) { return ::exp(x); }

// A row's running state: online (max m, sum z of exp(x - m)), linear sums, and the target's logit
// (added by the one thread that meets it, so no thread re-reads x_t after others wrote gradients).
template <class M>
struct RowAcc {
  M m, z, sx, sy, syx, xt;
};

template <class M>
__device__ __forceinline__ RowAcc<M> row_acc_identity() {
  return {lse_init_max<M>(), M(0), M(0), M(0), M(0), M(0)};
}

template <class M>
__device__ __forceinline__ RowAcc<M> row_acc_merge(const RowAcc<M>& p, const RowAcc<M>& q) {
  const M mn = nan_max(p.m, q.m);
  // Symmetric in p and q (IEEE + is commutative): both lanes of a butterfly get the same bits.
  return {mn, p.z * dev_exp(p.m - mn) + q.z * dev_exp(q.m - mn), p.sx + q.sx, p.sy + q.sy, p.syx + q.syx,
          p.xt + q.xt};
}

template <class M>
__device__ __forceinline__ RowAcc<M> row_acc_shfl(const RowAcc<M>& v, int o) {
  return {__shfl_xor_sync(0xffffffffu, v.m, o),   __shfl_xor_sync(0xffffffffu, v.z, o),
          __shfl_xor_sync(0xffffffffu, v.sx, o),  __shfl_xor_sync(0xffffffffu, v.sy, o),
          __shfl_xor_sync(0xffffffffu, v.syx, o), __shfl_xor_sync(0xffffffffu, v.xt, o)};
}

// Reduction over a group of kGroup threads: a warp (32) or the whole block (blockDim.x == kGroup,
// a multiple of 32). Every thread of the group gets the result.
template <int kGroup, class M>
__device__ __forceinline__ RowAcc<M> group_reduce(RowAcc<M> v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = row_acc_merge(v, row_acc_shfl(v, o));
  if constexpr (kGroup > 32) {
    __shared__ RowAcc<M> shared[kGroup / 32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();  // the previous row's readers are done with `shared`
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = lane < kGroup / 32 ? shared[lane] : row_acc_identity<M>();
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = row_acc_merge(v, row_acc_shfl(v, o));
  }
  return v;
}

// ---- row iteration in packs ----------------------------------------------------------------------
// Calls f(c, std::integral_constant<int, cnt>) for the elements of a contiguous row of C elements
// that thread `lane` of a kGroup-thread group owns: the elements before the first 16-byte
// boundary one by one, then aligned packs of VEC, then the tail one by one. `row` is the input's
// row pointer; the host guarantees every operand of the row has the same alignment (else VEC = 1).
// The same lane visits the same elements in every sweep over a row.
template <int VEC, int kGroup, class T, class F>
__device__ __forceinline__ void for_row_packs(const T* row, int64_t C, int lane, const F& f) {
  int64_t head = 0;
  if constexpr (VEC > 1) {
    const int64_t mis = static_cast<int64_t>(reinterpret_cast<uintptr_t>(row) / sizeof(T)) % VEC;
    head = mis ? VEC - mis : 0;
    if (head > C) head = C;
    if (lane < head) f(int64_t(lane), std::integral_constant<int, 1>{});
  }
  const int64_t nvec = (C - head) / VEC;
  for (int64_t v = lane; v < nvec; v += kGroup) f(head + v * VEC, std::integral_constant<int, VEC>{});
  for (int64_t c = head + nvec * VEC + lane; c < C; c += kGroup) f(c, std::integral_constant<int, 1>{});
}

// CNT values of p[0..CNT) in the math type (one 16-byte load when CNT is a full pack).
template <int CNT, class T, class M>
__device__ __forceinline__ void load_pack(const T* p, M (&out)[CNT]) {
  if constexpr (CNT > 1) {
    const Pack<T, CNT> v = *reinterpret_cast<const Pack<T, CNT>*>(p);
#pragma unroll
    for (int i = 0; i < CNT; ++i) out[i] = static_cast<M>(v.v[i]);
  } else {
    out[0] = static_cast<M>(*p);
  }
}

template <int CNT, class T, class M>
__device__ __forceinline__ void store_pack(T* p, const M (&in)[CNT]) {
  if constexpr (CNT > 1) {
    Pack<T, CNT> v;
#pragma unroll
    for (int i = 0; i < CNT; ++i) v.v[i] = static_cast<T>(in[i]);
    *reinterpret_cast<Pack<T, CNT>*>(p) = v;
  } else {
    *p = static_cast<T>(in[0]);
  }
}

// Whether every (N, C, S) operand in use shares the input's 16-byte alignment on every row, so the
// packed path is valid (rows layout only).
inline bool rowwise_packs_ok(const RowwiseArgs& a, int64_t elem_size) {
  const int64_t vec = 16 / elem_size;
  const void* ptrs[kRowOperands] = {a.input, a.grad_input, a.prob ? a.target : nullptr, a.grad_target};
  const uintptr_t base = reinterpret_cast<uintptr_t>(a.input) % 16;
  for (int k = 0; k < kRowOperands; ++k) {
    if (!ptrs[k]) continue;
    if (reinterpret_cast<uintptr_t>(ptrs[k]) % 16 != base) return false;
    if ((a.st[k][0] - a.st[0][0]) % vec != 0 || (a.st[k][2] - a.st[0][2]) % vec != 0) return false;
  }
  return true;
}

inline c10::Device current_cuda_device() {
  int dev = 0;
  C10_CUDA_CHECK(cudaGetDevice(&dev));
  return c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(dev));
}

}  // namespace lossext::cuda
