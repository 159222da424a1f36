// triplet_margin_loss on CUDA: the row-wise driver with the triplet functor
// (losses/triplet_margin_loss.h), one instance per kind of norm.
#include <lossext/cuda/rowwise_kernels.cuh>
#include <losses/triplet_margin_loss.h>

namespace lossext::cuda {
namespace {
void triplet_margin_loss_cuda(const RowwiseArgs& a, const TripletMarginParams& p) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "triplet_margin_loss_cuda", [&] {
    using M = typename RowMath<scalar_t>::type;
    triplet_dispatch_norm(p, [&](auto norm) { rowwise_cuda<scalar_t, TripletMarginRow<M, decltype(norm)::value>>(a, p); });
  });
}
}  // namespace
}  // namespace lossext::cuda

LOSSEXT_REGISTER_CUDA(lossext::triplet_margin_loss_stub, &lossext::cuda::triplet_margin_loss_cuda);
