#include <lossext/host.h>
#include <lossext/pointwise_op.h>
#include <losses/poisson_nll_loss.h>

#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::poisson_nll_loss_stub, lossext::PointwiseFn);

namespace lossext::ops {
namespace {
constexpr const char* kOp = "poisson_nll_loss";
}  // namespace

// input and target broadcast (as torch's composite op); integer targets (counts) are accepted.
PointwiseCall poisson_nll_loss_call(const Tensor& input, const Tensor& target, bool log_input, bool full,
                                    double eps, int64_t reduction) {
  // torch's formula subtracts e^x - t x (bool only if both are), x - t log(x + eps) and
  // t log t - t: a bool operand there is an error.
  const bool xb = input.scalar_type() == at::kBool, tb = target.scalar_type() == at::kBool;
  TORCH_CHECK(!((log_input ? xb && tb : xb) || (full && tb)), kOp,
              ": Subtraction, the `-` operator, with a bool tensor is not supported");
  return {.op = kOp,
          .stub = &poisson_nll_loss_stub,
          .inputs = {input, target},
          .n_grads = 2,
          .reduction = to_reduction(reduction, kOp),
          .params = {log_input ? 1.0 : 0.0, full ? 1.0 : 0.0, eps},
          .integral_ok = true};
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("poisson_nll_loss(Tensor input, Tensor target, bool log_input, bool full, float eps, int reduction, "
        "bool[2] grad_mask) -> (Tensor, Tensor, Tensor)");
  m.def("poisson_nll_loss_backward(Tensor grad_output, Tensor input, Tensor target, bool log_input, bool full, "
        "float eps, int reduction, bool[2] grad_mask) -> (Tensor, Tensor)");
}

LOSSEXT_POINTWISE_OP(poisson_nll_loss, lossext::ops::poisson_nll_loss_call, 2);
