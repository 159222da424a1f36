// multi_margin_loss on the CPU: the row-wise driver with the multi-margin functor (losses/multi_margin_loss.h).
#include <lossext/cpu/rowwise.h>
#include <losses/multi_margin_loss.h>

#include <ATen/Dispatch.h>

namespace lossext::CPU_CAPABILITY {
namespace {
void multi_margin_loss_cpu(const RowwiseArgs& a, const MultiMarginParams& p) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "multi_margin_loss_cpu", [&] {
    multi_margin_dispatch_p(p, [&](auto P) {
      rowwise_cpu<scalar_t, MultiMarginRow<math_t<scalar_t>, decltype(P)::value>>(a, p, "multi_margin_loss");
    });
  });
}
}  // namespace
}  // namespace lossext::CPU_CAPABILITY

LOSSEXT_REGISTER_CPU(lossext::multi_margin_loss_stub, &lossext::CPU_CAPABILITY::multi_margin_loss_cpu);
