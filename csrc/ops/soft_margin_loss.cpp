// soft_margin_loss: the op's argument checks and options. The math: losses/soft_margin_loss.h; the rules
// shared by the pair losses: ops/pair_loss.cpp.
#include <lossext/autograd.h>
#include <lossext/composite.h>
#include <lossext/pair_loss_host.h>
#include <lossext/pointwise_op.h>
#include <losses/soft_margin_loss.h>

#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::soft_margin_loss_stub, lossext::PointwiseFn);

namespace lossext::ops {

PairLossCall soft_margin_loss_call(const Tensor& input, const Tensor& target, int64_t reduction) {
  static const PairLossInfo info{
      .op = "soft_margin_loss", .stub = &soft_margin_loss_stub, .loss_in_input_dtype = true, .target_within_input = true,
      .int_pair_not_implemented = false};
  return {.info = &info, .input = input, .target = target, .reduction = reduction};
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("soft_margin_loss(Tensor input, Tensor target, int reduction, bool[2] grad_mask) "
        "-> (Tensor, Tensor, Tensor)");
  m.def("soft_margin_loss_backward(Tensor grad_output, "
        "Tensor input, Tensor target, int reduction, bool[2] grad_mask) "
        "-> (Tensor, Tensor)");
}

// The loss in ATen arithmetic, for second derivatives only (lossext/composite.h).
static at::Tensor soft_margin_loss_composite(const lossext::autograd::Args& a) {
  using namespace lossext::autograd;
  return reduce(softplus(tensor(a, 1).mul(tensor(a, 0)).neg()), int_at(a, 2));
}
LOSSEXT_AUTOGRAD(soft_margin_loss, &soft_margin_loss_composite, "input", "target");

LOSSEXT_POINTWISE_OP(soft_margin_loss, lossext::ops::soft_margin_loss_call, 2);
