// cross_entropy on CUDA: the row-wise driver with the cross-entropy functor (losses/cross_entropy.h).
#include <lossext/cuda/rowwise_kernels.cuh>
#include <losses/cross_entropy.h>

namespace lossext::cuda {
namespace {
void cross_entropy_cuda(const RowwiseArgs& a, const CrossEntropyParams& p) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "cross_entropy_cuda", [&] {
    using M = typename RowMath<scalar_t>::type;
    ce_dispatch_kind(a, p, [&](auto kind) {
      rowwise_cuda<scalar_t, CrossEntropyRow<M, decltype(kind)::value>>(a, p);
    });
  });
}
}  // namespace
}  // namespace lossext::cuda

LOSSEXT_REGISTER_CUDA(lossext::cross_entropy_stub, &lossext::cuda::cross_entropy_cuda);
