// cosine_embedding_loss on the CPU: the row-wise driver with the cosine functor
// (losses/cosine_embedding_loss.h).
#include <lossext/cpu/rowwise.h>
#include <losses/cosine_embedding_loss.h>

#include <ATen/Dispatch.h>

namespace lossext::CPU_CAPABILITY {
namespace {
void cosine_embedding_loss_cpu(const RowwiseArgs& a, const CosineEmbeddingParams& p) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "cosine_embedding_loss_cpu", [&] {
    rowwise_cpu<scalar_t, CosineEmbeddingRow<math_t<scalar_t>>>(a, p, "cosine_embedding_loss");
  });
}
}  // namespace
}  // namespace lossext::CPU_CAPABILITY

LOSSEXT_REGISTER_CPU(lossext::cosine_embedding_loss_stub, &lossext::CPU_CAPABILITY::cosine_embedding_loss_cpu);
