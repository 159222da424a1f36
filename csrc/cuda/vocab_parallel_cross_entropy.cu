// vocab_parallel_cross_entropy on CUDA (losses/vocab_parallel_cross_entropy.h): the rank's row
// statistics and its gradient on the row-wise driver (cross_entropy's functor, sliced); the combine
// of the gathered statistics, a thread per row, with deterministic sums (per-block partials in
// double, added in a fixed order by one block). An invalid target (no rank holds it, or several)
// cannot raise without a host sync: its loss and gradient row are NaN and it weighs 0 in the mean.
#include <lossext/cuda/rowwise_kernels.cuh>
#include <lossext/cuda/utils.cuh>
#include <losses/vocab_parallel_cross_entropy.h>

#include <ATen/Dispatch.h>

namespace lossext::cuda {
namespace {

template <template <class, int> class Row>
void run_rows(const RowwiseArgs& a, const CrossEntropyParams& p) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "vocab_parallel_cross_entropy_cuda", [&] {
    using M = typename RowMath<scalar_t>::type;
    switch (vpce_kind(a.weight != nullptr, p.smoothing)) {
      case kCEPlain: return rowwise_cuda<scalar_t, Row<M, kCEPlain>>(a, p);
      case kCESmooth: return rowwise_cuda<scalar_t, Row<M, kCESmooth>>(a, p);
      default: return rowwise_cuda<scalar_t, Row<M, kCESmoothW>>(a, p);
    }
  });
}

void vpce_stats_cuda(const RowwiseArgs& a, const CrossEntropyParams& p) { run_rows<VocabStatsRow>(a, p); }
void vpce_grad_cuda(const RowwiseArgs& a, const CrossEntropyParams& p) { run_rows<VocabGradRow>(a, p); }

constexpr int kCombineThreads = 256;

template <class T>
__global__ void __launch_bounds__(kCombineThreads)
combine_kernel(const VpceCombineArgs a, double* __restrict__ partials) {
  using M = typename RowMath<T>::type;
  double loss = 0, den = 0;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t n = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; n < a.N; n += stride) {
    double d;
    int bad;
    const M l = vpce_combine_row<M, T>(a, n, static_cast<M*>(a.saved) + n * kVpceSaved, d, bad);
    if (a.reduction == Reduction::None) static_cast<T*>(a.loss)[n] = static_cast<T>(l);
    loss += static_cast<double>(l);
    den += d;
  }
  loss = block_sum(loss);
  den = block_sum(den);
  if (threadIdx.x == 0) {
    partials[2 * blockIdx.x] = loss;
    partials[2 * blockIdx.x + 1] = den;
  }
}

template <class T>
__global__ void combine_finalize(const double* __restrict__ partials, int64_t nblocks, const VpceCombineArgs a) {
  double loss = 0, den = 0;
  for (int64_t b = threadIdx.x; b < nblocks; b += blockDim.x) {
    loss += partials[2 * b];
    den += partials[2 * b + 1];
  }
  loss = block_sum(loss);
  den = block_sum(den);
  if (threadIdx.x == 0) {
    *a.denominator = den;
    if (a.reduction != Reduction::None) {
      *static_cast<T*>(a.loss) = static_cast<T>(a.reduction == Reduction::Mean ? loss / den : loss);
    }
  }
}

void vpce_combine_cuda(const VpceCombineArgs& a, const char*) {
  auto stream = c10::cuda::getCurrentCUDAStream();
  const int64_t grid = grid_for(a.N, kCombineThreads, 4);
  const at::Tensor partials = partials_buffer(2 * grid, current_cuda_device());
  double* pp = partials.data_ptr<double>();
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "vpce_combine_cuda", [&] {
    if (a.N > 0) {
      combine_kernel<scalar_t><<<grid, kCombineThreads, 0, stream>>>(a, pp);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    combine_finalize<scalar_t><<<1, 512, 0, stream>>>(pp, a.N > 0 ? grid : 0, a);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace
}  // namespace lossext::cuda

LOSSEXT_REGISTER_CUDA(lossext::vpce_stats_stub, &lossext::cuda::vpce_stats_cuda);
LOSSEXT_REGISTER_CUDA(lossext::vpce_grad_stub, &lossext::cuda::vpce_grad_cuda);
LOSSEXT_REGISTER_CUDA(lossext::vpce_combine_stub, &lossext::cuda::vpce_combine_cuda);
