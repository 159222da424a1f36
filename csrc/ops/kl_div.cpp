#include <lossext/autograd.h>
#include <lossext/composite.h>
#include <lossext/host.h>
#include <lossext/pointwise_op.h>
#include <losses/kl_div.h>

#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::kl_div_stub, lossext::PointwiseFn);

namespace lossext::ops {
namespace {
constexpr const char* kOp = "kl_div";
}  // namespace

// input and target broadcast (as torch's composite op). batch_divide: F.kl_div's division of the
// result by input.size(0) (not the broadcast size; skipped for a 0-d input). reduction='batchmean'
// is sum + batch_divide; torch also divides a legacy size_average/reduce result when the
// reduction string says 'batchmean'. Reduced losses fold 1/batch into the driver's scale (loss
// and one-pass gradient together); an unreduced one scales each element in the functor.
PointwiseCall kl_div_call(const Tensor& input, const Tensor& target, int64_t reduction, bool log_target,
                          bool batch_divide) {
  const Reduction red = to_reduction(reduction, kOp);
  TORCH_CHECK(!at::isIntegralType(input.scalar_type(), true) && !at::isIntegralType(target.scalar_type(), true),
              kOp, ": Integral inputs not supported.");
  TORCH_CHECK(!at::isComplexType(input.scalar_type()) && !at::isComplexType(target.scalar_type()), kOp,
              ": Complex inputs not supported.");  // torch's type and text (not check_floating's)
  const double batch = batch_divide && input.dim() > 0 ? static_cast<double>(input.size(0)) : 1.0;
  c10::optional<double> scale;
  if (red == Reduction::Sum && batch != 1.0) scale = 1.0 / batch;
  if (red == Reduction::Mean && batch != 1.0) {  // 1 / (numel * batch); numel is the broadcast size
    const auto shape = broadcast_shape(kOp, {input, target}, {"input", "target"});
    double numel = 1;
    for (auto s : shape) numel *= static_cast<double>(s);
    scale = 1.0 / (numel * batch);
  }
  return {.op = kOp,
          .stub = &kl_div_stub,
          .inputs = {input, target},
          .n_grads = 2,
          .reduction = red,
          .params = {log_target ? 1.0 : 0.0, red == Reduction::None ? 1.0 / batch : 1.0},
          .scale_override = scale};
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("kl_div(Tensor input, Tensor target, int reduction, bool log_target, bool batch_divide, "
        "bool[2] grad_mask) -> (Tensor, Tensor, Tensor)");
  m.def("kl_div_backward(Tensor grad_output, Tensor input, Tensor target, int reduction, bool log_target, "
        "bool batch_divide, bool[2] grad_mask) -> (Tensor, Tensor)");
}

// The loss in ATen arithmetic, for second derivatives only (lossext/composite.h).
static at::Tensor kl_div_composite(const lossext::autograd::Args& a) {
  using namespace lossext::autograd;
  const at::Tensor x = tensor(a, 0), t = tensor(a, 1);
  const at::Tensor l = bool_at(a, 3) ? t.exp().mul(t.sub(x)) : t.xlogy(t).sub(t.mul(x));
  const at::Tensor r = reduce(l, int_at(a, 2));
  return bool_at(a, 4) && x.dim() > 0 ? r.div(static_cast<double>(x.size(0))) : r;
}
LOSSEXT_AUTOGRAD(kl_div, &kl_div_composite, "input", "target");

LOSSEXT_POINTWISE_OP(kl_div, lossext::ops::kl_div_call, 2);
