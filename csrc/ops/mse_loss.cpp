// mse_loss: the op's argument checks and options. The math: losses/mse_loss.h; the rules
// shared by the pair losses: ops/pair_loss.cpp.
#include <lossext/autograd.h>
#include <lossext/composite.h>
#include <lossext/pair_loss_host.h>
#include <lossext/pointwise_op.h>
#include <losses/mse_loss.h>

#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::mse_loss_stub, lossext::PointwiseFn);

namespace lossext::ops {

PairLossCall mse_loss_call(const Tensor& input, const Tensor& target, const OptTensor& weight,
                           int64_t reduction) {
  static const PairLossInfo info{.op = "mse_loss", .stub = &mse_loss_stub, .mean_over_weight_sum = true,
                                  .int_input_ok = true};
  return {.info = &info, .input = input, .target = target, .weight = weight.value_or(Tensor()), .reduction = reduction};
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("mse_loss(Tensor input, Tensor target, Tensor? weight, int reduction, bool[3] grad_mask) "
        "-> (Tensor, Tensor, Tensor, Tensor)");
  m.def("mse_loss_backward(Tensor grad_output, "
        "Tensor input, Tensor target, Tensor? weight, int reduction, bool[3] grad_mask) "
        "-> (Tensor, Tensor, Tensor)");
}

// The loss in ATen arithmetic, for second derivatives only (lossext/composite.h).
static at::Tensor mse_loss_composite(const lossext::autograd::Args& a) {
  using namespace lossext::autograd;
  return weighted(tensor(a, 0).sub(tensor(a, 1)).pow(2), tensor(a, 2), int_at(a, 3), true);
}
LOSSEXT_AUTOGRAD(mse_loss, &mse_loss_composite, "input", "target", "weight");

LOSSEXT_POINTWISE_OP(mse_loss, lossext::ops::mse_loss_call, 3);
