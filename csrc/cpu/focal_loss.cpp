// focal_loss (softmax form) on the CPU: the row-wise driver with the focal functor (losses/focal_loss.h).
#include <lossext/cpu/rowwise.h>
#include <losses/focal_loss.h>

#include <ATen/Dispatch.h>

namespace lossext::CPU_CAPABILITY {
namespace {
void focal_loss_cpu(const RowwiseArgs& a, const FocalParams& p) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "focal_loss_cpu", [&] {
    focal_dispatch_kind(a, p, [&](auto kind) {
      rowwise_cpu<scalar_t, FocalRow<math_t<scalar_t>, decltype(kind)::value>>(a, p, "focal_loss");
    });
  });
}
}  // namespace
}  // namespace lossext::CPU_CAPABILITY

LOSSEXT_REGISTER_CPU(lossext::focal_loss_stub, &lossext::CPU_CAPABILITY::focal_loss_cpu);
