#include <lossext/host.h>
#include <lossext/ops.h>
#include <losses/gaussian_nll_loss.h>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/core/DefaultDtype.h>
#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::gaussian_nll_loss_stub, lossext::PointwiseFn);
LOSSEXT_DEFINE_STUB(lossext::count_negative_stub, lossext::PointwiseFn);

namespace lossext::ops {
namespace {
constexpr const char* kOp = "gaussian_nll_loss";
constexpr double kHalfLog2Pi = 0.91893853320467274178;  // 0.5 log(2 pi), added when full

// torch.nn.functional's shape rules for var: input's shape; input's shape minus the last dimension
// (then unsqueezed); or input's rank with exactly one dimension that differs, where var has 1.
// Returns the view the kernel broadcasts.
Tensor var_view(const Tensor& input, const Tensor& var) {
  if (var.sizes() == input.sizes()) return var;
  if (input.dim() >= 1 && input.sizes().slice(0, input.dim() - 1) == var.sizes()) return var.unsqueeze(-1);
  if (input.dim() == var.dim()) {
    int64_t mismatched = 0;  // torch sums var's sizes over the differing dimensions
    for (int64_t d = 0; d < var.dim(); ++d)
      if (input.size(d) != var.size(d)) mismatched += var.size(d);
    if (mismatched == 1) return var;
  }
  TORCH_CHECK_VALUE(false, kOp, ": var is of incorrect size: var has shape ", shape_str(var.sizes()),
                    " but input has shape ", shape_str(input.sizes()),
                    " (expected the same, the same without the last dimension, or 1 in exactly one dimension)");
}

// torch's ValueError for negative variances. It needs the data, so on CUDA this is a device->host
// read (torch's torch.any(var < 0) syncs the same way); our own kernel counts the entries.
void check_nonnegative(const Tensor& var) {
  if (var.numel() == 0) return;
  PointwiseCall count{kOp, &count_negative_stub, {var}, 1, Reduction::Sum, {false}, {}, {}};
  const double n = pointwise_forward(count)[0].item<double>();
  TORCH_CHECK_VALUE(n == 0, kOp, ": var has negative entry/entries");
}

// The float `var` as torch uses it: var * ones_like(input), i.e. rounded to input's dtype.
double rounded_var(const Tensor& input, double v) {
  TORCH_CHECK_VALUE(!(v < 0), kOp, ": var has negative entry/entries");
  const auto st = at::isFloatingType(input.scalar_type()) ? input.scalar_type()
                                                          : c10::typeMetaToScalarType(c10::get_default_dtype());
  LOSSEXT_DISPATCH_FLOATING_TYPES(st, "gaussian_nll_loss_var", [&] {
    v = static_cast<double>(static_cast<scalar_t>(static_cast<at::opmath_type<scalar_t>>(v)));
  });
  return v;
}

PointwiseCall make_call(const Tensor& input, const Tensor& target, const Tensor& var, double var_value, bool full,
                        double eps, int64_t reduction, std::array<bool, 3> mask) {
  // torch computes input - target, which rejects bool; integer input/target are promoted.
  TORCH_CHECK(input.scalar_type() != at::kBool && target.scalar_type() != at::kBool, kOp,
              ": Subtraction, the `-` operator, with a bool tensor is not supported");
  PointwiseCall call{kOp,
                     &gaussian_nll_loss_stub,
                     {input, target, var},
                     3,
                     to_reduction(reduction, kOp),
                     {mask[0], mask[1], mask[2]},
                     {var.defined() ? 1.0 : rounded_var(input, var_value), eps, full ? kHalfLog2Pi : 0.0},
                     {}};
  call.integral_ok = true;
  return call;
}

// The var gradient has the shape of var's view; give it var's own shape back.
void restore_var_grad(Tensor& grad, const Tensor& var, const Tensor& view) {
  if (var.defined() && view.dim() != var.dim() && grad.sizes() == view.sizes()) grad = grad.view(var.sizes());
}

Tensor checked_var(const Tensor& input, const OptTensor& var) {
  if (!var.has_value() || !var->defined()) return Tensor();
  check_floating(kOp, "var", *var);
  check_same_device(kOp, input, {&*var});
  return var_view(input, *var);
}
}  // namespace

std::tuple<Tensor, Tensor, Tensor, Tensor> gaussian_nll_loss(const Tensor& input, const Tensor& target,
                                                             const OptTensor& var, double var_value, bool full,
                                                             double eps, int64_t reduction,
                                                             std::array<bool, 3> grad_mask) {
  const Tensor v = checked_var(input, var);
  if (v.defined()) check_nonnegative(v);
  auto r = pointwise_forward(make_call(input, target, v, var_value, full, eps, reduction, grad_mask));
  restore_var_grad(r[3], var.value_or(Tensor()), v);
  return {r[0], r[1], r[2], r[3]};
}

std::tuple<Tensor, Tensor, Tensor> gaussian_nll_loss_backward(const Tensor& grad_output, const Tensor& input,
                                                              const Tensor& target, const OptTensor& var,
                                                              double var_value, bool full, double eps,
                                                              int64_t reduction, std::array<bool, 3> grad_mask) {
  const Tensor v = checked_var(input, var);
  auto r = pointwise_backward(make_call(input, target, v, var_value, full, eps, reduction, grad_mask), grad_output);
  restore_var_grad(r[2], var.value_or(Tensor()), v);
  return {r[0], r[1], r[2]};
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("gaussian_nll_loss(Tensor input, Tensor target, Tensor? var, float var_value, bool full, float eps, "
        "int reduction, bool[3] grad_mask) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("gaussian_nll_loss_backward(Tensor grad_output, Tensor input, Tensor target, Tensor? var, "
        "float var_value, bool full, float eps, int reduction, bool[3] grad_mask) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(lossext, CPU, m) {
  m.impl("gaussian_nll_loss", &lossext::ops::gaussian_nll_loss);
  m.impl("gaussian_nll_loss_backward", &lossext::ops::gaussian_nll_loss_backward);
}
