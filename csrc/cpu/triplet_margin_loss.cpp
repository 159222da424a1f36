// triplet_margin_loss on the CPU: the row-wise driver with the triplet functor
// (losses/triplet_margin_loss.h), one instance per kind of norm.
#include <lossext/cpu/rowwise.h>
#include <losses/triplet_margin_loss.h>

#include <ATen/Dispatch.h>

namespace lossext::CPU_CAPABILITY {
namespace {
template <int kNorm>
void run(const RowwiseArgs& a, const TripletMarginParams& p) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "triplet_margin_loss_cpu", [&] {
    rowwise_cpu<scalar_t, TripletMarginRow<math_t<scalar_t>, kNorm>>(a, p, "triplet_margin_loss");
  });
}

void triplet_margin_loss_cpu(const RowwiseArgs& a, const TripletMarginParams& p) {
  switch (triplet_norm_kind(p.p)) {
    case kTripletL2: return run<kTripletL2>(a, p);
    case kTripletL1: return run<kTripletL1>(a, p);
    case kTripletLInf: return run<kTripletLInf>(a, p);
    default: return run<kTripletLq>(a, p);
  }
}
}  // namespace
}  // namespace lossext::CPU_CAPABILITY

LOSSEXT_REGISTER_CPU(lossext::triplet_margin_loss_stub, &lossext::CPU_CAPABILITY::triplet_margin_loss_cpu);
