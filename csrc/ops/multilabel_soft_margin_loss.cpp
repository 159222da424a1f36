#include <lossext/autograd.h>
#include <lossext/composite.h>
#include <lossext/host.h>
#include <lossext/pointwise_op.h>
#include <losses/multilabel_soft_margin_loss.h>

#include <c10/core/ScalarType.h>
#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::multilabel_soft_margin_loss_stub, lossext::PointwiseFn);

namespace lossext::ops {
namespace {
constexpr const char* kOp = "multilabel_soft_margin_loss";

// torch's function is composite: target and weight broadcast against the input and take part in
// dtype promotion (an integer one computes in the input's dtype; a bool target fails in 1 - target).
// We require both to broadcast *to* the input's shape: torch would also accept larger ones, then
// sum over a dimension that is not the class dimension. Integer operands are read as they are (the
// driver converts them on load).
}  // namespace

// 'none' sums each row (PointwiseCall::row_sum); its backward takes a grad_output of the row shape,
// which the runner broadcasts along the class dimension.
PointwiseCall multilabel_soft_margin_loss_call(const Tensor& input, const Tensor& target, const OptTensor& weight_opt,
                                               int64_t reduction) {
  TORCH_CHECK_NOT_IMPLEMENTED(is_loss_dtype(input.scalar_type()), kOp, ": not implemented for input dtype ",
                              input.scalar_type());
  TORCH_CHECK_INDEX(input.dim() >= 1, kOp, ": dimension specified as -1 (the classes) but the input has no dimensions");
  TORCH_CHECK(target.scalar_type() != at::kBool, kOp, ": a bool target is not supported (torch computes 1 - target)");
  check_broadcasts_to(kOp, "target", target, input.sizes());
  Tensor weight = weight_opt.value_or(Tensor());
  if (weight.defined()) {
    check_broadcasts_to(kOp, "weight", weight, input.sizes());
  }
  const Reduction red = to_reduction(reduction, kOp);
  // Per sample: the class mean (1/C; C = 0 gives NaN, as torch's 0/0). 'mean' then divides the
  // total by N: 1/(N C) = the driver's default 1/numel. No samples at all: torch's sum is 0 (not
  // 0 * 1/0).
  int64_t rows = 1;
  for (int64_t d = 0; d + 1 < input.dim(); ++d) rows *= input.size(d);
  const double class_scale = rows == 0 ? 1.0 : 1.0 / static_cast<double>(input.size(-1));
  return {.op = kOp,
          .stub = &multilabel_soft_margin_loss_stub,
          .inputs = {input, target, weight},
          .n_grads = 2,
          .reduction = red,
          .scale_override = red != Reduction::Mean ? c10::optional<double>(class_scale) : c10::nullopt,
          .integral_ok = true,
          .row_sum = red == Reduction::None};
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("multilabel_soft_margin_loss(Tensor input, Tensor target, Tensor? weight, int reduction, bool[2] grad_mask) "
        "-> (Tensor, Tensor, Tensor)");
  m.def("multilabel_soft_margin_loss_backward(Tensor grad_output, Tensor input, Tensor target, Tensor? weight, "
        "int reduction, bool[2] grad_mask) -> (Tensor, Tensor)");
}

// The loss in ATen arithmetic, for second derivatives only (lossext/composite.h).
static at::Tensor multilabel_soft_margin_loss_composite(const lossext::autograd::Args& a) {
  using namespace lossext::autograd;
  // -(t logsigmoid(x) + (1 - t) logsigmoid(-x)), times the weight, averaged over the classes.
  const at::Tensor x = tensor(a, 0), t = tensor(a, 1), w = tensor(a, 2);
  at::Tensor l = t.mul(softplus(x.neg())).add(t.neg().add(1).mul(softplus(x)));
  if (w.defined()) l = l.mul(w);
  const int64_t cd = x.dim() - 1;
  return reduce(l.sum(cd).div(static_cast<double>(x.size(cd))), int_at(a, 3));
}
LOSSEXT_AUTOGRAD(multilabel_soft_margin_loss, &multilabel_soft_margin_loss_composite, "input", "target");

LOSSEXT_POINTWISE_OP(multilabel_soft_margin_loss, lossext::ops::multilabel_soft_margin_loss_call, 2);
