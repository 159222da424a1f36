#include <lossext/autograd.h>
#include <lossext/composite.h>
#include <lossext/host.h>
#include <lossext/pointwise_op.h>
#include <losses/poisson_nll_loss.h>

#include <torch/library.h>

#include <algorithm>
#include <cmath>

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

// The loss in ATen arithmetic, for second derivatives only (lossext/composite.h).
static at::Tensor poisson_nll_loss_composite(const lossext::autograd::Args& a) {
  using namespace lossext::autograd;
  const at::Tensor x = tensor(a, 0), t = tensor(a, 1);
  at::Tensor l = bool_at(a, 2) ? x.exp().sub(t.mul(x)) : x.sub(t.mul(x.add(double_at(a, 4)).log()));
  if (bool_at(a, 3)) {  // Stirling's term where target > 1 (evaluated at 1 elsewhere: no 0 * inf)
    const at::Tensor big = t.gt(1), ts = t.where(big, at::Scalar(1.0));
    const at::Tensor st = ts.mul(ts.log()).sub(ts).add(ts.mul(2 * M_PI).log().mul(0.5));
    l = l.add(st.mul(big));
  }
  return reduce(l, int_at(a, 5));
}
LOSSEXT_AUTOGRAD(poisson_nll_loss, &poisson_nll_loss_composite, "input", "target");

LOSSEXT_POINTWISE_OP(poisson_nll_loss, lossext::ops::poisson_nll_loss_call, 2);
