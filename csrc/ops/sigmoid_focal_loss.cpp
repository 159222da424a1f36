// sigmoid_focal_loss (torchvision's semantics, float targets of the input's shape): the pointwise
// driver with the functor of losses/sigmoid_focal_loss.h.
#include <lossext/autograd.h>
#include <lossext/composite.h>
#include <lossext/host.h>
#include <lossext/pointwise_op.h>
#include <losses/sigmoid_focal_loss.h>

#include <cmath>
#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::sigmoid_focal_loss_stub, lossext::PointwiseFn);

namespace lossext::ops {
namespace {
constexpr const char* kOp = "sigmoid_focal_loss";
}  // namespace

PointwiseCall sigmoid_focal_loss_call(const Tensor& input, const Tensor& target, const OptTensor& weight,
                                      double alpha, double gamma, int64_t reduction) {
  TORCH_CHECK_VALUE(gamma >= 0 && std::isfinite(gamma), kOp, ": gamma must be a finite number >= 0, got ", gamma);
  TORCH_CHECK_VALUE(input.sizes() == target.sizes(), kOp, ": target size ", shape_str(target.sizes()),
                    " must be the same as input size ", shape_str(input.sizes()));
  if (weight.has_value()) {  // broadcasts to the input's shape without enlarging it (a (C,) class weight)
    check_floating(kOp, "weight", *weight);
    check_broadcasts_to(kOp, "weight", *weight, input.sizes());
  }
  return {.op = kOp,
          .stub = &sigmoid_focal_loss_stub,
          .inputs = {input, target, weight.value_or(Tensor())},
          .n_grads = 2,
          .reduction = to_reduction(reduction, kOp),
          .params = {alpha, gamma}};
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("sigmoid_focal_loss(Tensor input, Tensor target, Tensor? weight, float alpha, float gamma, "
        "int reduction, bool[2] grad_mask) -> (Tensor, Tensor, Tensor)");
  m.def("sigmoid_focal_loss_backward(Tensor grad_output, Tensor input, Tensor target, Tensor? weight, "
        "float alpha, float gamma, int reduction, bool[2] grad_mask) -> (Tensor, Tensor)");
}

// The loss in ATen arithmetic, for second derivatives only (lossext/composite.h).
static at::Tensor sigmoid_focal_loss_composite(const lossext::autograd::Args& a) {
  using namespace lossext::autograd;
  // torchvision's: ce (1 - p_t)^gamma, times alpha_t when alpha >= 0 (and lossext's weight).
  const at::Tensor x = tensor(a, 0), t = tensor(a, 1), w = tensor(a, 2);
  const double alpha = double_at(a, 3), gamma = double_at(a, 4);
  const at::Tensor p = x.sigmoid();
  const at::Tensor ce = t.neg().add(1).mul(x).add(softplus(x.neg()));
  const at::Tensor q = p.mul(t.neg().add(1)).add(p.neg().add(1).mul(t));  // 1 - p_t
  at::Tensor l = gamma == 0 ? ce : ce.mul(q.pow(gamma));
  if (alpha >= 0) l = l.mul(t.mul(alpha).add(t.neg().add(1).mul(1 - alpha)));
  if (w.defined()) l = l.mul(w);
  return reduce(l, int_at(a, 5));
}
LOSSEXT_AUTOGRAD(sigmoid_focal_loss, &sigmoid_focal_loss_composite, "input", "target");

LOSSEXT_POINTWISE_OP(sigmoid_focal_loss, lossext::ops::sigmoid_focal_loss_call, 2);
