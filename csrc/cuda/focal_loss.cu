// focal_loss (softmax form) on CUDA: the row-wise driver with the focal functor (losses/focal_loss.h).
#include <lossext/cuda/rowwise_kernels.cuh>
#include <losses/focal_loss.h>

namespace lossext::cuda {
namespace {
void focal_loss_cuda(const RowwiseArgs& a, const FocalParams& p) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "focal_loss_cuda", [&] {
    using M = typename RowMath<scalar_t>::type;
    focal_dispatch_kind(a, p, [&](auto kind) { rowwise_cuda<scalar_t, FocalRow<M, decltype(kind)::value>>(a, p); });
  });
}
}  // namespace
}  // namespace lossext::cuda

LOSSEXT_REGISTER_CUDA(lossext::focal_loss_stub, &lossext::cuda::focal_loss_cuda);
