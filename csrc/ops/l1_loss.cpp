// l1_loss: the op's argument checks and options. The math: losses/l1_loss.h; the rules
// shared by the pair losses: ops/pair_loss.cpp.
#include <lossext/ops.h>
#include <lossext/pointwise_op.h>
#include <losses/l1_loss.h>

#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::l1_loss_stub, lossext::PointwiseFn);

namespace lossext::ops {

PairLossCall l1_loss_call(const Tensor& input, const Tensor& target, const OptTensor& weight,
                          int64_t reduction) {
  static const PairLossInfo info{"l1_loss", &l1_loss_stub, /*mean_over_weight_sum=*/true};
  return {&info, input, target, weight.value_or(Tensor()), reduction, {}};
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("l1_loss(Tensor input, Tensor target, Tensor? weight, int reduction, bool[3] grad_mask) "
        "-> (Tensor, Tensor, Tensor, Tensor)");
  m.def("l1_loss_backward(Tensor grad_output, "
        "Tensor input, Tensor target, Tensor? weight, int reduction, bool[3] grad_mask) "
        "-> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(lossext, CPU, m) {
  LOSSEXT_POINTWISE_OP_IMPL(m, l1_loss, lossext::ops::l1_loss_call, 3);
}
