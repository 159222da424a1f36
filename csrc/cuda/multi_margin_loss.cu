// multi_margin_loss on CUDA: the row-wise driver with the multi-margin functor (losses/multi_margin_loss.h).
#include <lossext/cuda/rowwise_kernels.cuh>
#include <losses/multi_margin_loss.h>

namespace lossext::cuda {
namespace {
void multi_margin_loss_cuda(const RowwiseArgs& a, const MultiMarginParams& p) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "multi_margin_loss_cuda", [&] {
    multi_margin_dispatch_p(p, [&](auto P) {
      rowwise_cuda<scalar_t, MultiMarginRow<typename RowMath<scalar_t>::type, decltype(P)::value>>(a, p);
    });
  });
}
}  // namespace
}  // namespace lossext::cuda

LOSSEXT_REGISTER_CUDA(lossext::multi_margin_loss_stub, &lossext::cuda::multi_margin_loss_cuda);
