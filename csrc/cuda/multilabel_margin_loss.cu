// multilabel_margin_loss on CUDA: the target-set row-wise driver with the multilabel-margin functor
// (losses/multilabel_margin_loss.h).
#include <lossext/cuda/rowwise_set.cuh>
#include <losses/multilabel_margin_loss.h>

namespace lossext::cuda {
namespace {
void multilabel_margin_loss_cuda(const RowwiseArgs& a, const MultilabelMarginParams& p) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "multilabel_margin_loss_cuda", [&] {
    rowwise_set_cuda<scalar_t, MultilabelMarginRow<typename RowMath<scalar_t>::type>>(a, p);
  });
}
}  // namespace
}  // namespace lossext::cuda

LOSSEXT_REGISTER_CUDA(lossext::multilabel_margin_loss_stub, &lossext::cuda::multilabel_margin_loss_cuda);
