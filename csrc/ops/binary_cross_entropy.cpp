#include <lossext/autograd.h>
#include <lossext/composite.h>
#include <lossext/host.h>
#include <lossext/pointwise_op.h>
#include <losses/binary_cross_entropy.h>

#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::binary_cross_entropy_stub, lossext::PointwiseFn);

namespace lossext::ops {
namespace {
constexpr const char* kOp = "binary_cross_entropy";
}  // namespace

// torch's rules: a floating input (else NotImplementedError), a target of the same size
// (ValueError) and dtype (RuntimeError), a weight that broadcasts to the input (RuntimeError) and is
// applied in the input's dtype (torch multiplies it into the input-dtype loss in place).
PointwiseCall binary_cross_entropy_call(const Tensor& input, const Tensor& target, const OptTensor& weight_opt,
                                        int64_t reduction) {
  TORCH_CHECK_VALUE(input.sizes() == target.sizes(), kOp, ": target size ", shape_str(target.sizes()),
                    " must be the same as input size ", shape_str(input.sizes()));
  // torch checks the dtypes match first (RuntimeError), then finds no integer kernel.
  TORCH_CHECK(target.scalar_type() == input.scalar_type(), kOp, ": expected target of dtype ", input.scalar_type(),
              " (the input's), but got ", target.scalar_type());
  TORCH_CHECK_NOT_IMPLEMENTED(is_loss_dtype(input.scalar_type()), kOp, ": not implemented for input dtype ",
                              input.scalar_type());
  Tensor weight = weight_opt.value_or(Tensor());
  if (weight.defined()) {
    check_broadcasts_to(kOp, "weight", weight, input.sizes());
    if (weight.scalar_type() != input.scalar_type()) weight = weight.to(input.scalar_type());
  }
  return {.op = kOp,
          .stub = &binary_cross_entropy_stub,
          .inputs = {input, target, weight},
          .n_grads = 2,
          .reduction = to_reduction(reduction, kOp)};
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("binary_cross_entropy(Tensor input, Tensor target, Tensor? weight, int reduction, bool[2] grad_mask) "
        "-> (Tensor, Tensor, Tensor)");
  m.def("binary_cross_entropy_backward(Tensor grad_output, Tensor input, Tensor target, Tensor? weight, "
        "int reduction, bool[2] grad_mask) -> (Tensor, Tensor)");
}

// The loss in ATen arithmetic, for second derivatives only (lossext/composite.h).
static at::Tensor binary_cross_entropy_composite(const lossext::autograd::Args& a) {
  using namespace lossext::autograd;
  // torch clamps each log at -100.
  const at::Tensor x = tensor(a, 0), t = tensor(a, 1);
  const at::Tensor l = t.mul(x.log().clamp_min(-100)).add(t.neg().add(1).mul(x.neg().add(1).log().clamp_min(-100)));
  return weighted(l.neg(), tensor(a, 2), int_at(a, 3), false);
}
LOSSEXT_AUTOGRAD(binary_cross_entropy, &binary_cross_entropy_composite, "input", "target");

LOSSEXT_POINTWISE_OP(binary_cross_entropy, lossext::ops::binary_cross_entropy_call, 2);
