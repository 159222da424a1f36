#include <lossext/host.h>
#include <lossext/ops.h>
#include <losses/poisson_nll_loss.h>

#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::poisson_nll_loss_stub, lossext::PointwiseFn);

namespace lossext::ops {
namespace {
constexpr const char* kOp = "poisson_nll_loss";

// input and target broadcast (as torch's composite op); integer targets (counts) are accepted.
PointwiseCall make_call(const Tensor& input, const Tensor& target, bool log_input, bool full, double eps,
                        int64_t reduction, std::array<bool, 2> mask) {
  // torch's formula subtracts e^x - t x (bool only if both are), x - t log(x + eps) and
  // t log t - t: a bool operand there is an error.
  const bool xb = input.scalar_type() == at::kBool, tb = target.scalar_type() == at::kBool;
  TORCH_CHECK(!((log_input ? xb && tb : xb) || (full && tb)), kOp,
              ": Subtraction, the `-` operator, with a bool tensor is not supported");
  PointwiseCall call{kOp,          &poisson_nll_loss_stub, {input, target}, 2, to_reduction(reduction, kOp),
                     {mask[0], mask[1]}, {log_input ? 1.0 : 0.0, full ? 1.0 : 0.0, eps}, {}};
  call.integral_ok = true;
  return call;
}
}  // namespace

std::tuple<Tensor, Tensor, Tensor> poisson_nll_loss(const Tensor& input, const Tensor& target, bool log_input,
                                                    bool full, double eps, int64_t reduction,
                                                    std::array<bool, 2> grad_mask) {
  auto r = pointwise_forward(make_call(input, target, log_input, full, eps, reduction, grad_mask));
  return {r[0], r[1], r[2]};
}

std::tuple<Tensor, Tensor> poisson_nll_loss_backward(const Tensor& grad_output, const Tensor& input,
                                                     const Tensor& target, bool log_input, bool full, double eps,
                                                     int64_t reduction, std::array<bool, 2> grad_mask) {
  auto r = pointwise_backward(make_call(input, target, log_input, full, eps, reduction, grad_mask), grad_output);
  return {r[0], r[1]};
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("poisson_nll_loss(Tensor input, Tensor target, bool log_input, bool full, float eps, int reduction, "
        "bool[2] grad_mask) -> (Tensor, Tensor, Tensor)");
  m.def("poisson_nll_loss_backward(Tensor grad_output, Tensor input, Tensor target, bool log_input, bool full, "
        "float eps, int reduction, bool[2] grad_mask) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(lossext, CPU, m) {
  m.impl("poisson_nll_loss", &lossext::ops::poisson_nll_loss);
  m.impl("poisson_nll_loss_backward", &lossext::ops::poisson_nll_loss_backward);
}
