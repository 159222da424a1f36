// huber_loss: the op's argument checks and options. The math: losses/huber_loss.h; the rules
// shared by the pair losses: ops/pair_loss.cpp.
#include <lossext/ops.h>
#include <lossext/pointwise_op.h>
#include <losses/huber_loss.h>

#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::huber_loss_stub, lossext::PointwiseFn);

namespace lossext::ops {

PairLossCall huber_loss_call(const Tensor& input, const Tensor& target, const OptTensor& weight,
                             int64_t reduction, double delta) {
  TORCH_CHECK(delta > 0, "huber_loss does not support non-positive values for delta (got ", delta, ")");
  static const PairLossInfo info{"huber_loss", &huber_loss_stub, false, /*loss_in_input_dtype=*/true};
  return {&info, input, target, weight.value_or(Tensor()), reduction, {delta}};
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("huber_loss(Tensor input, Tensor target, Tensor? weight, int reduction, float delta, bool[3] grad_mask) "
        "-> (Tensor, Tensor, Tensor, Tensor)");
  m.def("huber_loss_backward(Tensor grad_output, "
        "Tensor input, Tensor target, Tensor? weight, int reduction, float delta, bool[3] grad_mask) "
        "-> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(lossext, CPU, m) {
  LOSSEXT_POINTWISE_OP_IMPL(m, huber_loss, lossext::ops::huber_loss_call, 3);
}
