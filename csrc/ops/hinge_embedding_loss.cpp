// hinge_embedding_loss: the op's argument checks and options. The math: losses/hinge_embedding_loss.h;
// the rules shared by the pair losses: ops/pair_loss.cpp. As torch: input and target broadcast, the
// loss has the input's dtype, targets may be integer or bool, and only the input is differentiable.
#include <lossext/autograd.h>
#include <lossext/composite.h>
#include <lossext/pair_loss_host.h>
#include <lossext/pointwise_op.h>
#include <losses/hinge_embedding_loss.h>

#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::hinge_embedding_loss_stub, lossext::PointwiseFn);

namespace lossext::ops {

PairLossCall hinge_embedding_loss_call(const Tensor& input, const Tensor& target, double margin,
                                       int64_t reduction) {
  static const PairLossInfo info{.op = "hinge_embedding_loss",
                                 .stub = &hinge_embedding_loss_stub,
                                 .loss_in_input_dtype = true,
                                 .float_input = true};
  return {.info = &info, .input = input, .target = target, .reduction = reduction, .params = {margin}};
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("hinge_embedding_loss(Tensor input, Tensor target, float margin, int reduction, bool[1] grad_mask) "
        "-> (Tensor, Tensor)");
  m.def("hinge_embedding_loss_backward(Tensor grad_output, Tensor input, Tensor target, float margin, "
        "int reduction, bool[1] grad_mask) -> Tensor");
}

// The loss in ATen arithmetic, for second derivatives only (lossext/composite.h).
static at::Tensor hinge_embedding_loss_composite(const lossext::autograd::Args& a) {
  using namespace lossext::autograd;
  const at::Tensor x = tensor(a, 0), t = tensor(a, 1);
  const at::Tensor l = x.neg().add(double_at(a, 2)).relu().mul(t.ne(1)).add(x.mul(t.ne(-1)));
  return reduce(l, int_at(a, 3));
}
LOSSEXT_AUTOGRAD(hinge_embedding_loss, &hinge_embedding_loss_composite, "input");

LOSSEXT_POINTWISE_OP(hinge_embedding_loss, lossext::ops::hinge_embedding_loss_call, 1);
