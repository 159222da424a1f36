// nll_loss on CUDA: the row-wise driver with the nll functor (losses/nll_loss.h).
#include <lossext/cuda/rowwise_kernels.cuh>
#include <losses/nll_loss.h>

namespace lossext::cuda {
namespace {
void nll_loss_cuda(const RowwiseArgs& a, const NllLossParams& p) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "nll_loss_cuda", [&] {
    rowwise_cuda<scalar_t, NllLossRow<typename RowMath<scalar_t>::type>>(a, p);
  });
}
}  // namespace
}  // namespace lossext::cuda

LOSSEXT_REGISTER_CUDA(lossext::nll_loss_stub, &lossext::cuda::nll_loss_cuda);
