#include <lossext/autograd.h>
#include <lossext/composite.h>
#include <lossext/host.h>
#include <lossext/pointwise_op.h>
#include <losses/gaussian_nll_loss.h>

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/core/DefaultDtype.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>

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
  const PointwiseCall count{.op = kOp, .stub = &count_negative_stub, .inputs = {var}, .reduction = Reduction::Sum};
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

Tensor checked_var(const Tensor& input, const OptTensor& var) {
  if (!var.has_value() || !var->defined()) return Tensor();
  check_floating(kOp, "var", *var);
  check_same_device(kOp, input, {&*var});
  return var_view(input, *var);
}

// The pointwise call plus what sets gaussian_nll_loss apart: the forward's negative-variance check,
// and the var gradient returned in var's own shape (the kernel sees var's view).
struct GaussianCall {
  PointwiseCall pw;
  Tensor var;  // the caller's (undefined for a float var)
  std::vector<bool> grad_mask;
};

void restore_var_grad(const GaussianCall& c, Tensor& grad) {
  const Tensor& view = c.pw.inputs[2];
  if (c.var.defined() && view.dim() != c.var.dim() && grad.sizes() == view.sizes()) grad = grad.view(c.var.sizes());
}

std::vector<Tensor> run_forward(GaussianCall c) {
  if (c.pw.inputs[2].defined()) check_nonnegative(c.pw.inputs[2]);
  c.pw.grad_mask = c.grad_mask;
  auto r = pointwise_forward(c.pw);
  restore_var_grad(c, r[3]);
  return r;
}

std::vector<Tensor> run_backward(GaussianCall c, const Tensor& grad_output) {
  c.pw.grad_mask = c.grad_mask;
  auto r = pointwise_backward(c.pw, grad_output);
  restore_var_grad(c, r[2]);
  return r;
}
}  // namespace

// var: a tensor, or absent with the float `var_value` for every element.
GaussianCall gaussian_nll_loss_call(const Tensor& input, const Tensor& target, const OptTensor& var, double var_value,
                                    bool full, double eps, int64_t reduction) {
  // torch computes input - target, which rejects bool; integer input/target are promoted.
  TORCH_CHECK(input.scalar_type() != at::kBool && target.scalar_type() != at::kBool, kOp,
              ": Subtraction, the `-` operator, with a bool tensor is not supported");
  const Tensor v = checked_var(input, var);
  PointwiseCall pw{.op = kOp,
                   .stub = &gaussian_nll_loss_stub,
                   .inputs = {input, target, v},
                   .n_grads = 3,
                   .reduction = to_reduction(reduction, kOp),
                   .params = {v.defined() ? 1.0 : rounded_var(input, var_value), eps, full ? kHalfLog2Pi : 0.0},
                   .integral_ok = true};
  return {std::move(pw), var.value_or(Tensor()), {}};
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("gaussian_nll_loss(Tensor input, Tensor target, Tensor? var, float var_value, bool full, float eps, "
        "int reduction, bool[3] grad_mask) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("gaussian_nll_loss_backward(Tensor grad_output, Tensor input, Tensor target, Tensor? var, "
        "float var_value, bool full, float eps, int reduction, bool[3] grad_mask) -> (Tensor, Tensor, Tensor)");
}

// The loss in ATen arithmetic, for second derivatives only (lossext/composite.h).
static at::Tensor gaussian_nll_loss_composite(const lossext::autograd::Args& a) {
  using namespace lossext::autograd;
  const at::Tensor x = tensor(a, 0), t = tensor(a, 1);
  const double eps = double_at(a, 5);
  at::Tensor v = tensor(a, 2);
  at::Tensor l;
  if (v.defined()) {
    if (v.sizes() != x.sizes() && x.dim() >= 1 && v.sizes() == x.sizes().slice(0, x.dim() - 1)) v = v.unsqueeze(-1);
    // torch clamps var at eps under no_grad: the value is clamped, the gradient passes unchanged.
    v = v.add(v.clamp_min(eps).sub(v).detach());
    l = v.log().add(x.sub(t).pow(2).div(v)).mul(0.5);
  } else {
    const double vv = std::max(double_at(a, 3), eps);
    l = x.sub(t).pow(2).div(vv).add(std::log(vv)).mul(0.5);
  }
  if (bool_at(a, 4)) l = l.add(0.5 * std::log(2 * M_PI));
  return reduce(l, int_at(a, 6));
}
LOSSEXT_AUTOGRAD(gaussian_nll_loss, &gaussian_nll_loss_composite, "input", "target", "var");

LOSSEXT_POINTWISE_OP(gaussian_nll_loss, lossext::ops::gaussian_nll_loss_call, 3);
