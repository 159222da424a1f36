// triplet_margin_loss on CUDA: the row-wise driver with the triplet functor
// (losses/triplet_margin_loss.h), one instance per kind of norm.
#include <lossext/cuda/rowwise_kernels.cuh>
#include <losses/triplet_margin_loss.h>

namespace lossext::cuda {
namespace {
template <int kNorm>
void run(const RowwiseArgs& a, const TripletMarginParams& p) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "triplet_margin_loss_cuda", [&] {
    rowwise_cuda<scalar_t, TripletMarginRow<typename RowMath<scalar_t>::type, kNorm>>(a, p);
  });
}

void triplet_margin_loss_cuda(const RowwiseArgs& a, const TripletMarginParams& p) {
  switch (triplet_norm_kind(p.p)) {
    case kTripletL2: return run<kTripletL2>(a, p);
    case kTripletL1: return run<kTripletL1>(a, p);
    case kTripletLInf: return run<kTripletLInf>(a, p);
    default: return run<kTripletLq>(a, p);
  }
}
}  // namespace
}  // namespace lossext::cuda

LOSSEXT_REGISTER_CUDA(lossext::triplet_margin_loss_stub, &lossext::cuda::triplet_margin_loss_cuda);
