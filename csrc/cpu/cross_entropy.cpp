// cross_entropy on the CPU: the row-wise driver with the cross-entropy functor (losses/cross_entropy.h).
#include <lossext/cpu/rowwise.h>
#include <losses/cross_entropy.h>

#include <ATen/Dispatch.h>

namespace lossext::CPU_CAPABILITY {
namespace {
void cross_entropy_cpu(const RowwiseArgs& a, const CrossEntropyParams& p) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "cross_entropy_cpu", [&] {
    ce_dispatch_kind(a, p, [&](auto kind) {
      rowwise_cpu<scalar_t, CrossEntropyRow<math_t<scalar_t>, decltype(kind)::value>>(a, p, "cross_entropy");
    });
  });
}
}  // namespace
}  // namespace lossext::CPU_CAPABILITY

LOSSEXT_REGISTER_CPU(lossext::cross_entropy_stub, &lossext::CPU_CAPABILITY::cross_entropy_cpu);
