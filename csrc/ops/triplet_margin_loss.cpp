// triplet_margin_loss: the op's argument checks and host functions (CPU and CUDA share them; the
// stub picks the kernels). The math: losses/triplet_margin_loss.h; the operands' broadcasting and
// layout: lossext/embedding_host.h. anchor, positive and negative are all differentiable. torch's
// functional checks margin > 0 (ValueError, in Python); its op accepts any margin, as this one.
#include <lossext/autograd.h>
#include <lossext/composite.h>
#include <lossext/embedding_host.h>
#include <lossext/host.h>
#include <lossext/registration.h>
#include <lossext/rowwise_host.h>
#include <losses/triplet_margin_loss.h>

#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::triplet_margin_loss_stub, lossext::TripletMarginFn);

namespace lossext::ops {
namespace {
constexpr const char* kOp = "triplet_margin_loss";

int64_t saved_count(double p) { return triplet_norm_kind(p) == kTripletLInf ? 6 : 3; }

EmbeddingProblem prepare(const Tensor& anchor, const Tensor& positive, const Tensor& negative, int64_t reduction,
                         std::array<bool, 3> want) {
  // torch's check (Loss.cpp), with its message.
  TORCH_CHECK(anchor.dim() == positive.dim() && positive.dim() == negative.dim(),
              "The anchor, positive, and negative tensors are expected to have the same number of dimensions, but "
              "got: anchor ", anchor.dim(), "D, positive ", positive.dim(), "D, and negative ", negative.dim(),
              "D inputs");
  // torch's composite subtracts the operands: bool tensors raise (its message).
  for (const Tensor* t : {&anchor, &positive, &negative})
    TORCH_CHECK(t->scalar_type() != at::kBool, "Subtraction, the `-` operator, with a bool tensor is not supported. "
                "If you are trying to invert a mask, use the `~` or `logical_not()` operator instead.");
  EmbeddingProblem pr = embedding_prepare(kOp, {anchor, positive, negative}, Tensor(),
                                          {"anchor", "positive", "negative"}, reduction, want);
  return pr;
}

// torch's vector norm has no identity for +-inf over an empty dimension (its message, verbatim).
void check_norm(const EmbeddingProblem& pr, double p) {
  TORCH_CHECK(!(triplet_norm_kind(p) == kTripletLInf && pr.args.C == 0),
              "linalg.vector_norm cannot compute the inf norm on the dimension ", pr.shape.size() - 1,
              "because this dimension is empty and the operation does not have an identity");
}

void run(const EmbeddingProblem& p, double margin, double norm_p, double eps, bool swap) {
  c10::OptionalDeviceGuard guard(p.rows[0].device());
  TripletMarginParams tp{margin, norm_p, eps, swap};
  tp.inv_rep[0] = embedding_inv_rep(p, {0, 1});
  tp.inv_rep[1] = embedding_inv_rep(p, {0, 2});
  tp.inv_rep[2] = embedding_inv_rep(p, {1, 2});
  triplet_margin_loss_stub(p.rows[0].device().type())(p.args, tp);
}
}  // namespace

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> triplet_margin_loss(const Tensor& anchor, const Tensor& positive,
                                                                       const Tensor& negative, double margin,
                                                                       double p, double eps, bool swap,
                                                                       int64_t reduction,
                                                                       std::array<bool, 3> grad_mask) {
  // float16: the backward computes the gradient in float (rowwise_forward_grads, as the fake kernels).
  const bool reduce =
      reduction != static_cast<int64_t>(Reduction::None) && rowwise_forward_grads({anchor, positive, negative});
  EmbeddingProblem pr = prepare(anchor, positive, negative, reduction,
                                {reduce && grad_mask[0], reduce && grad_mask[1], reduce && grad_mask[2]});
  check_norm(pr, p);
  Tensor loss = embedding_loss_buffer(pr);
  Tensor saved = embedding_saved_buffer(pr, saved_count(p));
  pr.args.mode = RowMode::kForward;
  run(pr, margin, p, eps, swap);
  return {loss, embedding_grad(pr, 0), embedding_grad(pr, 1), embedding_grad(pr, 2), saved};
}

std::tuple<Tensor, Tensor, Tensor> triplet_margin_loss_backward(const Tensor& grad_output, const Tensor& anchor,
                                                                const Tensor& positive, const Tensor& negative,
                                                                double margin, double p, double eps, bool swap,
                                                                int64_t reduction, const Tensor& saved,
                                                                std::array<bool, 3> grad_mask) {
  EmbeddingProblem pr = prepare(anchor, positive, negative, reduction, grad_mask);
  check_norm(pr, p);
  if (grad_mask[0] || grad_mask[1] || grad_mask[2]) {
    const Tensor go = embedding_set_grad_output(pr, grad_output);
    const Tensor s = embedding_use_saved(pr, saved, saved_count(p));
    pr.args.mode = RowMode::kBackward;
    run(pr, margin, p, eps, swap);
  }
  return {embedding_grad(pr, 0), embedding_grad(pr, 1), embedding_grad(pr, 2)};
}
}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  // `saved`: the forward's per-sample statistics of the three distances (sums of |u|^p; for p = +-inf
  // the extremes and their numbers of ties) for a separate backward.
  m.def("triplet_margin_loss(Tensor anchor, Tensor positive, Tensor negative, float margin, float p, float eps, "
        "bool swap, int reduction, bool[3] grad_mask) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def("triplet_margin_loss_backward(Tensor grad_output, Tensor anchor, Tensor positive, Tensor negative, "
        "float margin, float p, float eps, bool swap, int reduction, Tensor saved, bool[3] grad_mask) "
        "-> (Tensor, Tensor, Tensor)");
}

// The loss in ATen arithmetic, for second derivatives only (lossext/composite.h).
static at::Tensor triplet_margin_loss_composite(const lossext::autograd::Args& a) {
  using namespace lossext::autograd;
  // torch's pairwise_distance: the p-norm of (a - b + eps) over the last dimension.
  const at::Tensor an = tensor(a, 0), po = tensor(a, 1), ne = tensor(a, 2);
  const double p = double_at(a, 4), eps = double_at(a, 5);
  auto dist = [&](const at::Tensor& u, const at::Tensor& v) { return u.sub(v).add(eps).norm(p, {-1}); };
  at::Tensor dn = dist(an, ne);
  if (bool_at(a, 6)) dn = dn.minimum(dist(po, ne));
  return reduce(dist(an, po).sub(dn).add(double_at(a, 3)).relu(), int_at(a, 7));
}
LOSSEXT_AUTOGRAD(triplet_margin_loss, &triplet_margin_loss_composite, "anchor", "positive", "negative");

namespace {
void impls(torch::Library& m) {
  m.impl("triplet_margin_loss", &lossext::ops::triplet_margin_loss);
  m.impl("triplet_margin_loss_backward", &lossext::ops::triplet_margin_loss_backward);
}
}  // namespace
LOSSEXT_IMPL_ALL_DEVICES(impls);
