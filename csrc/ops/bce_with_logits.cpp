#include <lossext/autograd.h>
#include <lossext/composite.h>
#include <lossext/host.h>
#include <lossext/pointwise_op.h>
#include <losses/bce_with_logits.h>

#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::bce_with_logits_stub, lossext::PointwiseFn);

namespace lossext::ops {
namespace {
constexpr const char* kOp = "binary_cross_entropy_with_logits";
}  // namespace

PointwiseCall binary_cross_entropy_with_logits_call(const Tensor& input, const Tensor& target,
                                                    const OptTensor& weight, const OptTensor& pos_weight,
                                                    int64_t reduction) {
  TORCH_CHECK_VALUE(input.sizes() == target.sizes(), kOp, ": target size ", shape_str(target.sizes()),
                    " must be the same as input size ", shape_str(input.sizes()));
  // As torch: weight and pos_weight broadcast to the input's shape but may not enlarge it.
  for (const OptTensor* w : {&weight, &pos_weight}) {
    if (!w->has_value()) continue;
    const auto shape = broadcast_shape(kOp, {input, **w}, {"input", w == &weight ? "weight" : "pos_weight"});
    TORCH_CHECK(at::IntArrayRef(shape) == input.sizes(), kOp, ": ", w == &weight ? "weight" : "pos_weight",
                " of shape ", shape_str((*w)->sizes()), " does not broadcast to the input's shape ",
                shape_str(input.sizes()));
  }
  return {.op = kOp,
          .stub = &bce_with_logits_stub,
          .inputs = {input, target, weight.value_or(Tensor()), pos_weight.value_or(Tensor())},
          .n_grads = 2,
          .reduction = to_reduction(reduction, kOp),
          .params = {pos_weight.has_value() ? 1.0 : 0.0},
          // torch: (1 - target).mul_(input).sub_(...) keeps the target's dtype, whatever the others'.
          .loss_dtype = is_loss_dtype(target.scalar_type()) ? c10::make_optional(target.scalar_type())
                                                            : c10::nullopt};
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("binary_cross_entropy_with_logits(Tensor input, Tensor target, Tensor? weight, Tensor? pos_weight, "
        "int reduction, bool[2] grad_mask) -> (Tensor, Tensor, Tensor)");
  m.def("binary_cross_entropy_with_logits_backward(Tensor grad_output, Tensor input, Tensor target, "
        "Tensor? weight, Tensor? pos_weight, int reduction, bool[2] grad_mask) -> (Tensor, Tensor)");
}

// The loss in ATen arithmetic, for second derivatives only (lossext/composite.h).
static at::Tensor binary_cross_entropy_with_logits_composite(const lossext::autograd::Args& a) {
  using namespace lossext::autograd;
  const at::Tensor x = tensor(a, 0), t = tensor(a, 1), w = tensor(a, 2), pw = tensor(a, 3);
  const at::Tensor lw = pw.defined() ? pw.sub(1).mul(t).add(1) : at::Tensor();
  const at::Tensor sp = softplus(x.neg());
  return weighted(t.neg().add(1).mul(x).add(lw.defined() ? lw.mul(sp) : sp), w, int_at(a, 4), false);
}
LOSSEXT_AUTOGRAD(binary_cross_entropy_with_logits, &binary_cross_entropy_with_logits_composite, "input", "target");

LOSSEXT_POINTWISE_OP(binary_cross_entropy_with_logits, lossext::ops::binary_cross_entropy_with_logits_call, 2);
