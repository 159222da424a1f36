// huber_loss: the op's argument checks and options. The math: losses/huber_loss.h; the rules
// shared by the pair losses: ops/pair_loss.cpp.
#include <lossext/autograd.h>
#include <lossext/composite.h>
#include <lossext/pair_loss_host.h>
#include <lossext/pointwise_op.h>
#include <losses/huber_loss.h>

#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::huber_loss_stub, lossext::PointwiseFn);

namespace lossext::ops {

PairLossCall huber_loss_call(const Tensor& input, const Tensor& target, const OptTensor& weight,
                             int64_t reduction, double delta) {
  TORCH_CHECK(delta > 0, "huber_loss does not support non-positive values for delta (got ", delta, ")");
  static const PairLossInfo info{.op = "huber_loss", .stub = &huber_loss_stub, .loss_in_input_dtype = true};
  return {.info = &info, .input = input, .target = target, .weight = weight.value_or(Tensor()), .reduction = reduction,
          .params = {delta}};
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("huber_loss(Tensor input, Tensor target, Tensor? weight, int reduction, float delta, bool[3] grad_mask) "
        "-> (Tensor, Tensor, Tensor, Tensor)");
  m.def("huber_loss_backward(Tensor grad_output, "
        "Tensor input, Tensor target, Tensor? weight, int reduction, float delta, bool[3] grad_mask) "
        "-> (Tensor, Tensor, Tensor)");
}

// The loss in ATen arithmetic, for second derivatives only (lossext/composite.h).
static at::Tensor huber_loss_composite(const lossext::autograd::Args& a) {
  using namespace lossext::autograd;
  const double delta = double_at(a, 4);
  const at::Tensor d = tensor(a, 0).sub(tensor(a, 1)).abs();
  return weighted(d.pow(2).mul(0.5).where(d.lt(delta), d.sub(0.5 * delta).mul(delta)), tensor(a, 2), int_at(a, 3), false);
}
LOSSEXT_AUTOGRAD(huber_loss, &huber_loss_composite, "input", "target", "weight");

LOSSEXT_POINTWISE_OP(huber_loss, lossext::ops::huber_loss_call, 3);
