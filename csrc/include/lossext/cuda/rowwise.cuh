// The CUDA row-wise driver (contract in lossext/rowwise.h). A loss's .cu file is one line:
// rowwise_cuda<T, Functor<M>>(args, params) (lossext/cuda/rowwise_kernels.cuh).
//
// Rows layout: a group of threads per row (a warp for C <= 1024, else the whole 512-thread block),
// grid-stride over rows. Pass 1 reads the row in 16-byte packs and keeps the functor's statistics in
// registers; a group reduction (warp shuffles, then shared memory across warps: a fixed tree) gives
// every thread the row's statistics; pass 2 re-reads the row (still in L2) and writes the final
// gradient once. Every thread visits the same elements in both passes, so an in-place gradient
// (over the input) has no cross-thread hazard; x_t is read by every thread before pass 1.
// Spatial layout: one thread per row (a group of 1) walks the strided class dim (coalesced across
// threads).
// Reduced losses: per-block partials in double, added in order by finalize_sum (no atomics).
// The mean's denominator and the summed class weights come from a device pre-pass (no host sync).
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
  if (a.target) {
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
    out[0] = a.target ? den : rows_mean_denominator(a);
    out[1] = a.weight ? ws : static_cast<double>(a.C);
  }
}

// Launches the pre-pass on the current stream; returns the 2-double device buffer {denominator, W}.
// Class targets outside [0, C) weigh 0 here (they cannot raise on the device; see rowwise.h).
inline at::Tensor rowwise_prepass(const RowwiseArgs& a, c10::Device device) {
  at::Tensor out = at::empty({2}, at::TensorOptions().dtype(at::kDouble).device(device));
  const int64_t work = std::max<int64_t>(a.target ? a.N * a.S : 0, a.weight ? a.C : 0);
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

// ---- group reductions of the functor's statistics ------------------------------------------------

// Merge over a group of kGroup threads: a warp (32) or the whole block (blockDim.x == kGroup, a
// multiple of 32). Every thread of the group gets the result. merge(s, o) is symmetric in IEEE
// arithmetic for the losses here, so both lanes of a butterfly hold the same bits.
template <int kGroup, class F, class M, int K>
__device__ __forceinline__ void group_merge(const F& f, M (&s)[K]) {
  if constexpr (kGroup == 1) return;  // a thread per row
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    M other[K];
#pragma unroll
    for (int k = 0; k < K; ++k) other[k] = __shfl_xor_sync(0xffffffffu, s[k], o);
    f.merge(s, other);
  }
  if constexpr (kGroup > 32) {
    __shared__ M shared[kGroup / 32][K];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();  // the previous row's readers are done with `shared`
    if (lane == 0)
#pragma unroll
      for (int k = 0; k < K; ++k) shared[warp][k] = s[k];
    __syncthreads();
    // Warp by warp in a fixed order (the same in every thread).
#pragma unroll
    for (int k = 0; k < K; ++k) s[k] = shared[0][k];
    for (int w = 1; w < kGroup / 32; ++w) {
      M other[K];
#pragma unroll
      for (int k = 0; k < K; ++k) other[k] = shared[w][k];
      f.merge(s, other);
    }
  }
}

template <int kGroup>
__device__ __forceinline__ void group_sync() {
  if constexpr (kGroup == 1) {
    return;
  } else if constexpr (kGroup > 32) {
    __syncthreads();
  } else {
    __syncwarp();
  }
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
  const void* ptrs[kRowOperands] = {a.input, a.grad_input, a.other, a.grad_other, a.third, a.grad_third};
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
