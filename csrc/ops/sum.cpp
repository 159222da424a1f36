// The sum of a tensor by the pointwise driver (losses/sum.h): deterministic, in double. Host
// infrastructure (the normalizer sum(weight) of l1/mse's weighted mean), not an op.
#include <lossext/host.h>
#include <losses/sum.h>

LOSSEXT_DEFINE_STUB(lossext::sum_stub, lossext::PointwiseFn);

namespace lossext {

at::Tensor sum_all(const char* op, const at::Tensor& t) {
  return pointwise_forward({.op = op, .stub = &sum_stub, .inputs = {t}, .reduction = Reduction::Sum})[0];
}

}  // namespace lossext
