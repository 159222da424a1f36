// triplet_margin_loss on the CPU: the row-wise driver with the triplet functor
// (losses/triplet_margin_loss.h), one instance per kind of norm.
#include <lossext/cpu/rowwise.h>
#include <losses/triplet_margin_loss.h>

#include <ATen/Dispatch.h>

namespace lossext::CPU_CAPABILITY {
namespace {
void triplet_margin_loss_cpu(const RowwiseArgs& a, const TripletMarginParams& p) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "triplet_margin_loss_cpu", [&] {
    triplet_dispatch_norm(p, [&](auto norm) {
      rowwise_cpu<scalar_t, TripletMarginRow<math_t<scalar_t>, decltype(norm)::value>>(a, p, "triplet_margin_loss");
    });
  });
}
}  // namespace
}  // namespace lossext::CPU_CAPABILITY

LOSSEXT_REGISTER_CPU(lossext::triplet_margin_loss_stub, &lossext::CPU_CAPABILITY::triplet_margin_loss_cpu);
