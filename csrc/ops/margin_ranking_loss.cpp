// margin_ranking_loss: the op's argument checks and options. The math: losses/margin_ranking_loss.h.
// The three operands broadcast (torch's functional also requires equal ranks: checked in Python, as
// torch does); the loss takes their promoted dtype, and integer operands are accepted, as torch's
// composite accepts them. All three are differentiable (torch's composite differentiates y too).
#include <lossext/autograd.h>
#include <lossext/composite.h>
#include <lossext/host.h>
#include <lossext/pointwise_op.h>
#include <losses/margin_ranking_loss.h>

#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::margin_ranking_loss_stub, lossext::PointwiseFn);

namespace lossext::ops {
namespace {
constexpr const char* kOp = "margin_ranking_loss";
}  // namespace

PointwiseCall margin_ranking_loss_call(const Tensor& input1, const Tensor& input2, const Tensor& target,
                                       double margin, int64_t reduction) {
  // torch negates the target and subtracts the inputs: both refuse bool tensors (its messages).
  TORCH_CHECK(target.scalar_type() != at::kBool, kOp, ": Negation, the `-` operator, on a bool tensor is not "
              "supported. If you are trying to invert a mask, use the `~` or `logical_not()` operator instead.");
  TORCH_CHECK(input1.scalar_type() != at::kBool && input2.scalar_type() != at::kBool, kOp,
              ": Subtraction, the `-` operator, with a bool tensor is not supported. If you are trying to invert a "
              "mask, use the `~` or `logical_not()` operator instead.");
  // The driver's checks would name the operands input/target/operand 2: check with the real names.
  const char* names[] = {"input1", "input2", "target"};
  const Tensor* ts[] = {&input1, &input2, &target};
  for (int k = 0; k < 3; ++k) {
    // torch's clamp_min raises NotImplementedError for complex operands.
    TORCH_CHECK_NOT_IMPLEMENTED(!at::isComplexType(ts[k]->scalar_type()), kOp, ": complex ", names[k],
                                " is not supported (got ", ts[k]->scalar_type(), ")");
    if (!at::isIntegralType(ts[k]->scalar_type(), /*includeBool=*/true)) check_floating(kOp, names[k], *ts[k]);
  }
  broadcast_shape(kOp, {input1, input2, target}, {names[0], names[1], names[2]});
  return {.op = kOp,
          .stub = &margin_ranking_loss_stub,
          .inputs = {input1, input2, target},
          .n_grads = 3,
          .reduction = to_reduction(reduction, kOp),
          .params = {margin},
          .integral_ok = true};
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("margin_ranking_loss(Tensor input1, Tensor input2, Tensor target, float margin, int reduction, "
        "bool[3] grad_mask) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("margin_ranking_loss_backward(Tensor grad_output, Tensor input1, Tensor input2, Tensor target, "
        "float margin, int reduction, bool[3] grad_mask) -> (Tensor, Tensor, Tensor)");
}

// The loss in ATen arithmetic, for second derivatives only (lossext/composite.h).
static at::Tensor margin_ranking_loss_composite(const lossext::autograd::Args& a) {
  using namespace lossext::autograd;
  return reduce(tensor(a, 2).neg().mul(tensor(a, 0).sub(tensor(a, 1))).add(double_at(a, 3)).relu(), int_at(a, 4));
}
LOSSEXT_AUTOGRAD(margin_ranking_loss, &margin_ranking_loss_composite, "input1", "input2", "target");

LOSSEXT_POINTWISE_OP(margin_ranking_loss, lossext::ops::margin_ranking_loss_call, 3);
