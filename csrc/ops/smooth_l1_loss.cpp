// smooth_l1_loss: the op's argument checks and options. The math: losses/smooth_l1_loss.h; the rules
// shared by the pair losses: ops/pair_loss.cpp.
#include <lossext/autograd.h>
#include <lossext/composite.h>
#include <lossext/pair_loss_host.h>
#include <lossext/pointwise_op.h>
#include <losses/smooth_l1_loss.h>

#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::smooth_l1_loss_stub, lossext::PointwiseFn);

namespace lossext::ops {

PairLossCall smooth_l1_loss_call(const Tensor& input, const Tensor& target, int64_t reduction, double beta) {
  TORCH_CHECK(beta >= 0, "smooth_l1_loss does not support negative values for beta (got ", beta, ")");
  // torch's beta == 0 is l1_loss, whose `input - target` rejects a bool target.
  TORCH_CHECK(beta != 0 || target.scalar_type() != at::kBool,
              "smooth_l1_loss: a bool target is not supported with beta=0 (torch: subtraction with a bool tensor)");
  static const PairLossInfo info{.op = "smooth_l1_loss", .stub = &smooth_l1_loss_stub, .int_input_ok = true};
  return {.info = &info, .input = input, .target = target, .reduction = reduction, .params = {beta}};
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("smooth_l1_loss(Tensor input, Tensor target, int reduction, float beta, bool[2] grad_mask) "
        "-> (Tensor, Tensor, Tensor)");
  m.def("smooth_l1_loss_backward(Tensor grad_output, "
        "Tensor input, Tensor target, int reduction, float beta, bool[2] grad_mask) "
        "-> (Tensor, Tensor)");
}

// The loss in ATen arithmetic, for second derivatives only (lossext/composite.h).
static at::Tensor smooth_l1_loss_composite(const lossext::autograd::Args& a) {
  using namespace lossext::autograd;
  const double beta = double_at(a, 3);
  const at::Tensor d = tensor(a, 0).sub(tensor(a, 1)).abs();
  return reduce(beta == 0 ? d : d.pow(2).mul(0.5 / beta).where(d.lt(beta), d.sub(0.5 * beta)), int_at(a, 2));
}
LOSSEXT_AUTOGRAD(smooth_l1_loss, &smooth_l1_loss_composite, "input", "target");

LOSSEXT_POINTWISE_OP(smooth_l1_loss, lossext::ops::smooth_l1_loss_call, 2);
