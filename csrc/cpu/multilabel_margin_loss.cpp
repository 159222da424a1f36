// multilabel_margin_loss on the CPU: the target-set row-wise driver with the multilabel-margin
// functor (losses/multilabel_margin_loss.h).
#include <lossext/cpu/rowwise_set.h>
#include <losses/multilabel_margin_loss.h>

#include <ATen/Dispatch.h>

namespace lossext::CPU_CAPABILITY {
namespace {
void multilabel_margin_loss_cpu(const RowwiseArgs& a, const MultilabelMarginParams& p) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "multilabel_margin_loss_cpu", [&] {
    rowwise_set_cpu<scalar_t, MultilabelMarginRow<math_t<scalar_t>>>(a, p, "multilabel_margin_loss");
  });
}
}  // namespace
}  // namespace lossext::CPU_CAPABILITY

LOSSEXT_REGISTER_CPU(lossext::multilabel_margin_loss_stub, &lossext::CPU_CAPABILITY::multilabel_margin_loss_cpu);
