// nll_loss on the CPU: the row-wise driver with the nll functor (losses/nll_loss.h).
#include <lossext/cpu/rowwise.h>
#include <losses/nll_loss.h>

#include <ATen/Dispatch.h>

namespace lossext::CPU_CAPABILITY {
namespace {
void nll_loss_cpu(const RowwiseArgs& a, const NllLossParams& p) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "nll_loss_cpu",
                                  [&] { rowwise_cpu<scalar_t, NllLossRow<math_t<scalar_t>>>(a, p, "nll_loss"); });
}
}  // namespace
}  // namespace lossext::CPU_CAPABILITY

LOSSEXT_REGISTER_CPU(lossext::nll_loss_stub, &lossext::CPU_CAPABILITY::nll_loss_cpu);
