// linear_cross_entropy's CUDA helpers (losses/linear_cross_entropy.h): the mean's denominator (the
// row-wise driver's device pre-pass: no host sync), the float32 accumulation of half gradients, the
// softcap, and the logging statistics (lse, z-loss).
#include <lossext/cuda/rowwise.cuh>
#include <lossext/cuda/utils.cuh>
#include <losses/linear_cross_entropy.h>

#include <ATen/Dispatch.h>

namespace lossext::cuda {
namespace {

at::Tensor lce_denominator_cuda(const RowwiseArgs& a, const char*) {
  // {denominator, W}: element 0 is the one the chunks read. An invalid target weighs 0 here and
  // makes its row NaN in the chunk's kernel (rowwise.h).
  return rowwise_prepass(a, current_cuda_device());
}

template <class T>
__global__ void accumulate_kernel(const LceAccArgs a) {
  float* acc = a.acc;
  T* part = static_cast<T*>(a.part);
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < a.n; i += stride) {
    switch (a.mode) {
      case LceAcc::kSet: acc[i] = static_cast<float>(part[i]); break;
      case LceAcc::kAdd: acc[i] += static_cast<float>(part[i]); break;
      case LceAcc::kFinish: part[i] = static_cast<T>(acc[i] + static_cast<float>(part[i])); break;
      case LceAcc::kCast: part[i] = static_cast<T>(acc[i]); break;
    }
  }
}

void lce_accumulate_cuda(const LceAccArgs& a) {
  if (a.n == 0) return;
  auto stream = c10::cuda::getCurrentCUDAStream();
  const int64_t grid = grid_for(a.n, 256, 8);
  if (a.dtype == at::kBFloat16) {
    accumulate_kernel<c10::BFloat16><<<grid, 256, 0, stream>>>(a);
  } else {
    accumulate_kernel<c10::Half><<<grid, 256, 0, stream>>>(a);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <class T>
__global__ void softcap_kernel(const LceCapArgs a) {
  using M = at::opmath_type<T>;
  T* x = static_cast<T*>(a.x);
  T* y = static_cast<T*>(a.y);
  const M cap = static_cast<M>(a.cap), inv = static_cast<M>(1.0 / a.cap);
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < a.n; i += stride) {
    if (a.mode == LceCap::kApply) {
      const T c = static_cast<T>(cap * ::tanh(static_cast<M>(x[i]) * inv));
      x[i] = c;
      y[i] = c;
    } else {
      const M u = static_cast<M>(y[i]) * inv;
      x[i] = static_cast<T>(static_cast<M>(x[i]) * (M(1) - u * u));
    }
  }
}

void lce_softcap_cuda(const LceCapArgs& a) {
  if (a.n == 0) return;
  auto stream = c10::cuda::getCurrentCUDAStream();
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "lce_softcap_cuda", [&] {
    softcap_kernel<scalar_t><<<grid_for(a.n, 256, 8), 256, 0, stream>>>(a);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}


// One block strides over the tokens (lce_token_stats; coalesced writes; the tokens are few next to
// the logits) and sums in double with a fixed tree: deterministic, no second pass, no host sync.
template <class T>
__global__ void stats_kernel(const LceStatsArgs a) {
  using M = at::opmath_type<T>;
  M* lse = static_cast<M*>(a.lse);
  M* zl = static_cast<M*>(a.zl);
  const bool none = a.reduction == Reduction::None;
  double zs = 0, ws = 0;
  for (int64_t i = threadIdx.x; i < a.n; i += blockDim.x) {
    M l, zt, wt;
    lce_token_stats<T>(a, i, l, zt, wt);
    lse[i] = l;
    if (none) zl[i] = zt;
    zs += static_cast<double>(zt);
    ws += static_cast<double>(wt);
  }
  zs = block_sum(zs);
  ws = block_sum(ws);
  if (threadIdx.x == 0 && !none) *zl = static_cast<M>(a.reduction == Reduction::Mean ? zs / ws : zs);
}

void lce_stats_cuda(const LceStatsArgs& a) {
  auto stream = c10::cuda::getCurrentCUDAStream();
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "lce_stats_cuda", [&] {
    stats_kernel<scalar_t><<<1, 512, 0, stream>>>(a);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace
}  // namespace lossext::cuda

LOSSEXT_REGISTER_CUDA(lossext::lce_denominator_stub, &lossext::cuda::lce_denominator_cuda);
LOSSEXT_REGISTER_CUDA(lossext::lce_accumulate_stub, &lossext::cuda::lce_accumulate_cuda);
LOSSEXT_REGISTER_CUDA(lossext::lce_softcap_stub, &lossext::cuda::lce_softcap_cuda);
LOSSEXT_REGISTER_CUDA(lossext::lce_stats_stub, &lossext::cuda::lce_stats_cuda);
