// triplet_margin_with_distance_loss with a user distance function: the margin op on the distances
// (losses/triplet_margin_with_distance_loss.h; the pointwise driver broadcasts them as torch's
// `margin + dist_pos - dist_neg` does). Without swap, d_swap is None and unread. The Python layer
// calls the callable and takes the native triplet_margin_loss when there is none.
#include <lossext/autograd.h>
#include <lossext/composite.h>
#include <lossext/host.h>
#include <lossext/pointwise_op.h>
#include <losses/triplet_margin_with_distance_loss.h>

#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::triplet_margin_with_distance_loss_stub, lossext::PointwiseFn);

namespace lossext::ops {
namespace {
constexpr const char* kOp = "triplet_margin_with_distance_loss";
}  // namespace

PointwiseCall triplet_margin_with_distance_loss_call(const Tensor& dist_pos, const Tensor& dist_neg,
                                                     const OptTensor& dist_swap, double margin, int64_t reduction) {
  const bool swap = dist_swap.has_value() && dist_swap->defined();
  // The driver reads an absent operand as the constant 1; the functor does not read it without swap.
  const Tensor ds = swap ? *dist_swap : Tensor();
  const char* names[] = {"dist_pos", "dist_neg", "dist_swap"};
  const Tensor* ts[] = {&dist_pos, &dist_neg, &ds};
  for (int k = 0; k < 3; ++k)
    if (ts[k]->defined() && !at::isIntegralType(ts[k]->scalar_type(), /*includeBool=*/true))
      check_floating(kOp, names[k], *ts[k]);
  broadcast_shape(kOp, {dist_pos, dist_neg, ds}, {names[0], names[1], names[2]});
  return {.op = kOp,
          .stub = &triplet_margin_with_distance_loss_stub,
          .inputs = {dist_pos, dist_neg, ds},
          .n_grads = 3,
          .reduction = to_reduction(reduction, kOp),
          .params = {margin, swap ? 1.0 : 0.0},
          .integral_ok = true};
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("triplet_margin_with_distance_loss(Tensor dist_pos, Tensor dist_neg, Tensor? dist_swap, float margin, "
        "int reduction, bool[3] grad_mask) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("triplet_margin_with_distance_loss_backward(Tensor grad_output, Tensor dist_pos, Tensor dist_neg, "
        "Tensor? dist_swap, float margin, int reduction, bool[3] grad_mask) -> (Tensor, Tensor, Tensor)");
}

// The loss in ATen arithmetic, for second derivatives only (lossext/composite.h).
static at::Tensor triplet_margin_with_distance_loss_composite(const lossext::autograd::Args& a) {
  using namespace lossext::autograd;
  const at::Tensor dp = tensor(a, 0), ds = tensor(a, 2);
  const at::Tensor dn = ds.defined() ? tensor(a, 1).minimum(ds) : tensor(a, 1);
  return reduce(dp.sub(dn).add(double_at(a, 3)).relu(), int_at(a, 4));
}
LOSSEXT_AUTOGRAD(triplet_margin_with_distance_loss, &triplet_margin_with_distance_loss_composite, "dist_pos", "dist_neg", "dist_swap");

LOSSEXT_POINTWISE_OP(triplet_margin_with_distance_loss, lossext::ops::triplet_margin_with_distance_loss_call, 3);
