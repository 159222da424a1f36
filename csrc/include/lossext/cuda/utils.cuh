// CUDA helpers shared by every lossext kernel: launch sizing, warp/block reductions, and the
// deterministic two-pass sum (per-block partials in double, then one block adds them in a fixed
// order; no float atomics anywhere).
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace lossext::cuda {

inline int sm_count() {
  static int cached[64] = {};
  int dev = 0;
  C10_CUDA_CHECK(cudaGetDevice(&dev));
  if (dev < 64 && cached[dev]) return cached[dev];
  int n = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
  if (dev < 64) cached[dev] = n;
  return n;
}

// Blocks for a grid-stride loop over `work` items handled `per_block` at a time: enough to fill
// the device (`blocks_per_sm` resident blocks per SM), never more than there is work for.
inline int64_t grid_for(int64_t work, int64_t per_block, int blocks_per_sm) {
  const int64_t needed = std::max<int64_t>(1, (work + per_block - 1) / per_block);
  return std::min<int64_t>(needed, int64_t(sm_count()) * blocks_per_sm);
}

template <class T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024). The result is valid in
// thread 0. A fixed tree: the same inputs give the same bits.
template <class T>
__device__ __forceinline__ T block_sum(T v) {
  __shared__ T shared[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // `shared` may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int nwarps = blockDim.x >> 5;
  v = (threadIdx.x < nwarps) ? shared[lane] : T(0);
  if (warp == 0) v = warp_sum(v);
  return v;
}

template <class T>
__device__ __forceinline__ T warp_max(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = ::max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// out[0] = (T)(scale * sum(partials[0..n)) / (divisor ? *divisor : 1)): the second pass of the
// deterministic sum. One block; partials are read in a fixed order.
template <class T>
__global__ void finalize_sum_kernel(const double* __restrict__ partials, int64_t n, double scale,
                                    const double* __restrict__ divisor, T* __restrict__ out) {
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += partials[i];
  s = block_sum(s);
  if (threadIdx.x == 0) {
    double r = s * scale;
    if (divisor) r = r / *divisor;
    *out = static_cast<T>(r);
  }
}

// Launches finalize_sum_kernel on the current stream.
template <class T>
inline void finalize_sum(const double* partials, int64_t n, double scale, const double* divisor, T* out) {
  finalize_sum_kernel<T><<<1, 512, 0, c10::cuda::getCurrentCUDAStream()>>>(partials, n, scale, divisor, out);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Scratch for per-block partial sums (device memory from the caching allocator).
inline at::Tensor partials_buffer(int64_t n, c10::Device device) {
  return at::empty({std::max<int64_t>(n, 1)}, at::TensorOptions().dtype(at::kDouble).device(device));
}

}  // namespace lossext::cuda
