// sigmoid_focal_loss (torchvision's semantics): the pointwise driver with the functors of
// losses/sigmoid_focal_loss.h, in two ops:
//   sigmoid_focal_loss        float targets of the input's shape (differentiable, as torchvision's)
//   sigmoid_focal_loss_index  class-index targets (detection heads): the one-hot of each row's index
//                             computed in the kernel; background = C; ignore_index; mean over the
//                             elements of the rows kept
// Both take an optional per-class / broadcast `weight` and a one-element `normalizer` (e.g. the
// number of positives, on the device) that divides the loss on the device, without a host sync: the
// reduced loss for mean/sum, every element for none. Neither weight nor normalizer is differentiable.
#include <lossext/autograd.h>
#include <lossext/composite.h>
#include <lossext/host.h>
#include <lossext/pointwise_op.h>
#include <losses/linear_cross_entropy.h>
#include <losses/sigmoid_focal_loss.h>

#include <ATen/ops/arange.h>
#include <cmath>
#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::sigmoid_focal_loss_stub, lossext::PointwiseFn);
LOSSEXT_DEFINE_STUB(lossext::sigmoid_focal_loss_index_stub, lossext::PointwiseFn);

namespace lossext::ops {
namespace {
constexpr const char* kOp = "sigmoid_focal_loss";

void check_gamma(double gamma) {
  TORCH_CHECK_VALUE(gamma >= 0 && std::isfinite(gamma), kOp, ": gamma must be a finite number >= 0, got ", gamma);
}

// The normalizer as the kernels read it: a 0-d view of its one element (absent: undefined = 1).
Tensor normalizer_view(const OptTensor& normalizer, const Tensor& input) {
  if (!normalizer.has_value() || !normalizer->defined()) return Tensor();
  const Tensor& n = *normalizer;
  TORCH_CHECK(n.numel() == 1, kOp, ": expected normalizer to have one element, but got shape ", shape_str(n.sizes()));
  TORCH_CHECK(n.is_floating_point() || at::isIntegralType(n.scalar_type(), /*includeBool=*/false), kOp,
              ": expected a floating or integer normalizer, but got ", n.scalar_type());
  check_same_device(kOp, input, {&n});
  return n.reshape({});
}

// The class dimension of an index target: the last (target = input.shape[:-1]) or 1 for
// (N, C, d1..dk) inputs (target = (N, d1..dk)); the last wins where both match.
int64_t class_dim(const Tensor& input, const Tensor& target) {
  const auto xs = input.sizes();
  TORCH_CHECK(input.dim() >= 1, kOp, ": class-index targets need an input with a class dimension, got a 0-d input");
  if (target.sizes().equals(xs.slice(0, xs.size() - 1))) return input.dim() - 1;
  if (input.dim() >= 3) {
    std::vector<int64_t> k{xs[0]};
    k.insert(k.end(), xs.begin() + 2, xs.end());
    if (target.sizes().equals(k)) return 1;
  }
  TORCH_CHECK(false, kOp, ": class-index target of shape ", shape_str(target.sizes()),
              " does not match input of shape ", shape_str(xs), " (expected input.shape[:-1], or (N, d1..dk) for an ",
              "(N, C, d1..dk) input)");
  return -1;
}

// A tensor of shape (C,) viewed so that it broadcasts along dim cd of an input of `dims` dims.
Tensor along(const Tensor& t, int64_t cd, int64_t dims) {
  std::vector<int64_t> shape(dims, 1);
  shape[cd] = t.size(0);
  return t.view(shape);
}
}  // namespace

PointwiseCall sigmoid_focal_loss_call(const Tensor& input, const Tensor& target, const OptTensor& weight,
                                      const OptTensor& normalizer, double alpha, double gamma, int64_t reduction) {
  check_gamma(gamma);
  TORCH_CHECK_VALUE(input.sizes() == target.sizes(), kOp, ": target size ", shape_str(target.sizes()),
                    " must be the same as input size ", shape_str(input.sizes()));
  check_floating(kOp, "input", input);  // (integral_ok below is for the normalizer only)
  check_floating(kOp, "target", target);
  if (weight.has_value()) {  // broadcasts to the input's shape without enlarging it (a (C,) class weight)
    check_floating(kOp, "weight", *weight);
    check_broadcasts_to(kOp, "weight", *weight, input.sizes());
  }
  const Tensor nrm = normalizer_view(normalizer, input);
  return {.op = kOp,
          .stub = &sigmoid_focal_loss_stub,
          .inputs = {input, target, weight.value_or(Tensor()), nrm},
          .n_grads = 2,
          .reduction = to_reduction(reduction, kOp),
          .params = {alpha, gamma, nrm.defined() ? 1.0 : 0.0},
          .integral_ok = true};  // (an integer normalizer; the target is checked floating above)
}

PointwiseCall sigmoid_focal_loss_index_call(const Tensor& input, const Tensor& target, const OptTensor& weight,
                                            const OptTensor& normalizer, double alpha, double gamma,
                                            int64_t reduction, int64_t ignore_index) {
  check_gamma(gamma);
  check_floating(kOp, "input", input);
  TORCH_CHECK(target.scalar_type() == at::kLong, kOp, ": expected class-index targets of dtype Long (int64), but got ",
              target.scalar_type());
  const int64_t cd = class_dim(input, target), C = input.size(cd);
  check_same_device(kOp, input, {&target});
  Tensor w;
  if (weight.has_value() && weight->defined()) {
    TORCH_CHECK(weight->dim() == 1 && weight->size(0) == C, kOp, ": expected weight of shape [", C,
                "] (one value per class), but got ", shape_str(weight->sizes()));
    check_floating(kOp, "weight", *weight);
    check_same_device(kOp, input, {&*weight});
    w = along(*weight, cd, input.dim());
  }
  const Reduction red = to_reduction(reduction, kOp);
  // The row-wise driver's target pre-pass over the target alone: on the CPU it raises IndexError for
  // an index outside [0, C] (C: background) and ignore_index; for mean it counts the rows kept, on
  // the input's device (no host sync; an invalid CUDA index counts 0 and its row is NaN).
  Tensor den;
  if (input.is_cpu() || red == Reduction::Mean) {
    const Tensor tc = target.contiguous();
    RowwiseArgs a;
    a.dtype = input.scalar_type();
    a.C = C;
    const bool last = cd == input.dim() - 1;  // one sample per target element; else (N, S) samples
    a.N = last ? tc.numel() : tc.size(0);
    a.S = last ? 1 : (a.N == 0 ? 0 : tc.numel() / a.N);
    a.target = tc.const_data_ptr();
    a.tN = a.S;
    a.tS = 1;
    a.ignore_index = ignore_index;
    a.weighted_mean = false;
    a.background_class = true;
    const Tensor d = lce_denominator_stub(input.device().type())(a, kOp);
    if (red == Reduction::Mean) den = d.select(0, 0);
  }
  const Tensor nrm = normalizer_view(normalizer, input);
  // The element's class, in the math dtype (exact below 2^24 classes): read in place by the CPU
  // loop for float32/float64 inputs, with no per-tile conversion.
  const at::ScalarType cdt = input.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  TORCH_CHECK(C < (int64_t{1} << 24), kOp, ": class-index targets support fewer than 2^24 classes, got ", C);
  const Tensor classes = along(at::arange(C, input.options().dtype(cdt)), cd, input.dim());
  return {.op = kOp,
          .stub = &sigmoid_focal_loss_index_stub,
          .inputs = {input, target.unsqueeze(cd), classes, w, nrm, den},
          .n_grads = 1,
          // The mean's count is the den operand (an empty input keeps Mean: 0 / 0, NaN as torch's mean)
          .reduction = red == Reduction::Mean && input.numel() > 0 ? Reduction::Sum : red,
          .params = {alpha, gamma, static_cast<double>(ignore_index), static_cast<double>(C),
                     nrm.defined() ? 1.0 : 0.0, red == Reduction::Mean ? 1.0 : 0.0, input.is_cpu() ? 0.0 : 1.0},
          .integral_ok = true,
          .internal = {false, false, true, false, false, true}};  // (the class table, the mean's count)
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("sigmoid_focal_loss(Tensor input, Tensor target, Tensor? weight, Tensor? normalizer, float alpha, "
        "float gamma, int reduction, bool[2] grad_mask) -> (Tensor, Tensor, Tensor)");
  m.def("sigmoid_focal_loss_backward(Tensor grad_output, Tensor input, Tensor target, Tensor? weight, "
        "Tensor? normalizer, float alpha, float gamma, int reduction, bool[2] grad_mask) -> (Tensor, Tensor)");
  m.def("sigmoid_focal_loss_index(Tensor input, Tensor target, Tensor? weight, Tensor? normalizer, float alpha, "
        "float gamma, int reduction, int ignore_index, bool[1] grad_mask) -> (Tensor, Tensor)");
  m.def("sigmoid_focal_loss_index_backward(Tensor grad_output, Tensor input, Tensor target, Tensor? weight, "
        "Tensor? normalizer, float alpha, float gamma, int reduction, int ignore_index, bool[1] grad_mask) -> Tensor");
}

// The losses in ATen arithmetic, for second derivatives only (lossext/composite.h).
namespace {
// torchvision's: ce (1 - p_t)^gamma, times alpha_t when alpha >= 0.
at::Tensor focal_elementwise(const at::Tensor& x, const at::Tensor& t, double alpha, double gamma) {
  using lossext::autograd::softplus;
  const at::Tensor p = x.sigmoid();
  const at::Tensor ce = t.neg().add(1).mul(x).add(softplus(x.neg()));
  const at::Tensor q = p.mul(t.neg().add(1)).add(p.neg().add(1).mul(t));  // 1 - p_t
  at::Tensor l = gamma == 0 ? ce : ce.mul(q.pow(gamma));
  if (alpha >= 0) l = l.mul(t.mul(alpha).add(t.neg().add(1).mul(1 - alpha)));
  return l;
}
}  // namespace

static at::Tensor sigmoid_focal_loss_composite(const lossext::autograd::Args& a) {
  using namespace lossext::autograd;
  const at::Tensor x = tensor(a, 0), t = tensor(a, 1), w = tensor(a, 2), n = tensor(a, 3);
  at::Tensor l = focal_elementwise(x, t, double_at(a, 4), double_at(a, 5));
  if (w.defined()) l = l.mul(w);
  l = reduce(l, int_at(a, 6));
  return n.defined() ? l.div(n.reshape({})) : l;
}
LOSSEXT_AUTOGRAD(sigmoid_focal_loss, &sigmoid_focal_loss_composite, "input", "target");

static at::Tensor sigmoid_focal_loss_index_composite(const lossext::autograd::Args& a) {
  using namespace lossext::autograd;
  const at::Tensor x = tensor(a, 0), t = tensor(a, 1), w = tensor(a, 2), n = tensor(a, 3);
  const int64_t reduction = int_at(a, 6), ign = int_at(a, 7);
  const int64_t cd = t.dim() == x.dim() - 1 && t.sizes().equals(x.sizes().slice(0, x.dim() - 1)) ? x.dim() - 1 : 1;
  const int64_t C = x.size(cd);
  std::vector<int64_t> shape(x.dim(), 1);
  shape[cd] = C;
  const at::Tensor cls = at::arange(C, t.options()).view(shape);
  const at::Tensor y = t.unsqueeze(cd).eq(cls).to(x.scalar_type());
  const at::Tensor keep = t.ne(ign).unsqueeze(cd).to(x.scalar_type());
  at::Tensor l = focal_elementwise(x, y, double_at(a, 4), double_at(a, 5)).mul(keep);
  if (w.defined()) l = l.mul(w.view(shape));
  l = reduction == 1 ? l.sum().div(keep.sum().mul(static_cast<double>(C))) : reduce(l, reduction);
  return n.defined() ? l.div(n.reshape({})) : l;
}
LOSSEXT_AUTOGRAD(sigmoid_focal_loss_index, &sigmoid_focal_loss_index_composite, "input");

LOSSEXT_POINTWISE_OP(sigmoid_focal_loss, lossext::ops::sigmoid_focal_loss_call, 2);
LOSSEXT_POINTWISE_OP(sigmoid_focal_loss_index, lossext::ops::sigmoid_focal_loss_index_call, 1);
