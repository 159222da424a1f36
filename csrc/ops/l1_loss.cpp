// l1_loss: the op's argument checks and options. The math: losses/l1_loss.h; the rules
// shared by the pair losses: ops/pair_loss.cpp.
#include <lossext/autograd.h>
#include <lossext/composite.h>
#include <lossext/pair_loss_host.h>
#include <lossext/pointwise_op.h>
#include <losses/l1_loss.h>

#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::l1_loss_stub, lossext::PointwiseFn);
LOSSEXT_DEFINE_STUB(lossext::l1_loss_complex_stub, lossext::PointwiseFn);

namespace lossext::ops {

PairLossCall l1_loss_call(const Tensor& input, const Tensor& target, const OptTensor& weight,
                          int64_t reduction) {
  static const PairLossInfo info{.op = "l1_loss", .stub = &l1_loss_stub, .mean_over_weight_sum = true,
                                  .int_input_ok = true, .int_pair_not_implemented = false, .bool_target_ok = false,
                                  .complex_stub = &l1_loss_complex_stub};
  return {.info = &info, .input = input, .target = target, .weight = weight.value_or(Tensor()), .reduction = reduction};
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("l1_loss(Tensor input, Tensor target, Tensor? weight, int reduction, bool[3] grad_mask) "
        "-> (Tensor, Tensor, Tensor, Tensor)");
  m.def("l1_loss_backward(Tensor grad_output, "
        "Tensor input, Tensor target, Tensor? weight, int reduction, bool[3] grad_mask) "
        "-> (Tensor, Tensor, Tensor)");
}

// The loss in ATen arithmetic, for second derivatives only (lossext/composite.h).
static at::Tensor l1_loss_composite(const lossext::autograd::Args& a) {
  using namespace lossext::autograd;
  return weighted(tensor(a, 0).sub(tensor(a, 1)).abs(), tensor(a, 2), int_at(a, 3), true);
}
LOSSEXT_AUTOGRAD(l1_loss, &l1_loss_composite, "input", "target", "weight");

LOSSEXT_POINTWISE_OP(l1_loss, lossext::ops::l1_loss_call, 3);
