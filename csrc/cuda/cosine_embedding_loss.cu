// cosine_embedding_loss on CUDA: the row-wise driver with the cosine functor
// (losses/cosine_embedding_loss.h).
#include <lossext/cuda/rowwise_kernels.cuh>
#include <losses/cosine_embedding_loss.h>

namespace lossext::cuda {
namespace {
void cosine_embedding_loss_cuda(const RowwiseArgs& a, const CosineEmbeddingParams& p) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "cosine_embedding_loss_cuda", [&] {
    rowwise_cuda<scalar_t, CosineEmbeddingRow<typename RowMath<scalar_t>::type>>(a, p);
  });
}
}  // namespace
}  // namespace lossext::cuda

LOSSEXT_REGISTER_CUDA(lossext::cosine_embedding_loss_stub, &lossext::cuda::cosine_embedding_loss_cuda);
