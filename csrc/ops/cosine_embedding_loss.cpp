// cosine_embedding_loss: the op's argument checks and host functions (CPU and CUDA share them; the
// stub picks the kernels). The math: losses/cosine_embedding_loss.h; the operands' broadcasting and
// layout: lossext/embedding_host.h. input1 and input2 are differentiable; the target is only
// compared (== 1, == -1), as in torch's composite, so it has no gradient.
#include <lossext/autograd.h>
#include <lossext/composite.h>
#include <lossext/embedding_host.h>
#include <lossext/host.h>
#include <lossext/registration.h>
#include <lossext/rowwise_host.h>
#include <losses/cosine_embedding_loss.h>

#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::cosine_embedding_loss_stub, lossext::CosineEmbeddingFn);

namespace lossext::ops {
namespace {
constexpr const char* kOp = "cosine_embedding_loss";
constexpr int64_t kSaved = CosineEmbeddingRow<float>::kSaved;

// torch's checks (Loss.cpp), with its messages: a 1-D target goes with (N, D) inputs, a 0-d one
// with (D) inputs.
EmbeddingProblem prepare(const Tensor& input1, const Tensor& input2, const Tensor& target, int64_t reduction,
                         std::array<bool, 2> want) {
  const int64_t td = target.dim();
  TORCH_CHECK(td == 1 || td == 0, "0D or 1D target tensor expected, multi-target not supported");
  if (td == 1) {
    TORCH_CHECK(input1.dim() == 2 && input2.dim() == 2,
                "1D target tensor expects 2D input tensors, but found inputs with sizes ", input1.sizes(), " and ",
                input2.sizes(), ".");
  } else {
    TORCH_CHECK(input1.dim() == 1 && input2.dim() == 1,
                "0D target tensor expects 1D input tensors, but found inputs with sizes ", input1.sizes(), " and ",
                input2.sizes(), ".");
  }
  return embedding_prepare(kOp, {input1, input2}, target, {"input1", "input2", "target"}, reduction, want,
                           /*float_each=*/true);
}

void run(const EmbeddingProblem& p, double margin) {
  c10::OptionalDeviceGuard guard(p.rows[0].device());
  const CosineEmbeddingParams cp{margin, embedding_inv_rep(p, {0}), embedding_inv_rep(p, {1})};
  cosine_embedding_loss_stub(p.rows[0].device().type())(p.args, cp);
}
}  // namespace

std::tuple<Tensor, Tensor, Tensor, Tensor> cosine_embedding_loss(const Tensor& input1, const Tensor& input2,
                                                                 const Tensor& target, double margin,
                                                                 int64_t reduction, std::array<bool, 2> grad_mask) {
  // float16: the backward computes the gradient in float (rowwise_forward_grads, as the fake kernels).
  const bool reduce = reduction != static_cast<int64_t>(Reduction::None) && rowwise_forward_grads({input1, input2, target});
  EmbeddingProblem p = prepare(input1, input2, target, reduction, {reduce && grad_mask[0], reduce && grad_mask[1]});
  Tensor loss = embedding_loss_buffer(p);
  Tensor saved = embedding_saved_buffer(p, kSaved);
  p.args.mode = RowMode::kForward;
  run(p, margin);
  return {loss, embedding_grad(p, 0), embedding_grad(p, 1), saved};
}

std::tuple<Tensor, Tensor> cosine_embedding_loss_backward(const Tensor& grad_output, const Tensor& input1,
                                                          const Tensor& input2, const Tensor& target, double margin,
                                                          int64_t reduction, const Tensor& saved,
                                                          std::array<bool, 2> grad_mask) {
  EmbeddingProblem p = prepare(input1, input2, target, reduction, {grad_mask[0], grad_mask[1]});
  if (grad_mask[0] || grad_mask[1]) {
    const Tensor go = embedding_set_grad_output(p, grad_output);
    const Tensor s = embedding_use_saved(p, saved, kSaved);
    p.args.mode = RowMode::kBackward;
    run(p, margin);
  }
  return {embedding_grad(p, 0), embedding_grad(p, 1)};
}
}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  // `saved`: the forward's per-sample (|x1|^2, |x2|^2, x1.x2) for a separate backward.
  m.def("cosine_embedding_loss(Tensor input1, Tensor input2, Tensor target, float margin, int reduction, "
        "bool[2] grad_mask) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("cosine_embedding_loss_backward(Tensor grad_output, Tensor input1, Tensor input2, Tensor target, "
        "float margin, int reduction, Tensor saved, bool[2] grad_mask) -> (Tensor, Tensor)");
}

// The loss in ATen arithmetic, for second derivatives only (lossext/composite.h).
static at::Tensor cosine_embedding_loss_composite(const lossext::autograd::Args& a) {
  using namespace lossext::autograd;
  // torch's: cos = <x1, x2> / sqrt((|x1|^2 + 1e-12)(|x2|^2 + 1e-12)); 1 - cos for y = 1, relu(cos - margin) for y = -1.
  const at::Tensor x1 = tensor(a, 0), x2 = tensor(a, 1), y = tensor(a, 2);
  const int64_t d = x1.dim() == 1 ? 0 : 1;
  const at::Tensor m = x1.mul(x1).sum(d).add(1e-12).mul(x2.mul(x2).sum(d).add(1e-12));
  const at::Tensor cos = x1.mul(x2).sum(d).div(m.sqrt());
  const at::Tensor l = cos.neg().add(1).mul(y.eq(1)).add(cos.sub(double_at(a, 3)).relu().mul(y.eq(-1)));
  return reduce(l, int_at(a, 4));
}
LOSSEXT_AUTOGRAD(cosine_embedding_loss, &cosine_embedding_loss_composite, "input1", "input2");

namespace {
void impls(torch::Library& m) {
  m.impl("cosine_embedding_loss", &lossext::ops::cosine_embedding_loss);
  m.impl("cosine_embedding_loss_backward", &lossext::ops::cosine_embedding_loss_backward);
}
}  // namespace
LOSSEXT_IMPL_ALL_DEVICES(impls);
