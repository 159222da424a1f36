// sigmoid_focal_loss (torchvision's semantics, float targets of the input's shape): the pointwise
// driver with the functor of losses/sigmoid_focal_loss.h.
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

LOSSEXT_POINTWISE_OP(sigmoid_focal_loss, lossext::ops::sigmoid_focal_loss_call, 2);
