// multi_margin_loss host functions (CPU and CUDA share them; the stub picks the kernels). torch's
// argument rules are checked here (they are not nll_loss's), then the (C) / (N, C) input runs as
// an (N, C) problem of the row-wise driver with multi_margin's class-target rules.
#include <lossext/autograd.h>
#include <lossext/composite.h>
#include <lossext/host.h>
#include <lossext/registration.h>
#include <lossext/rowwise_host.h>
#include <losses/multi_margin_loss.h>

#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::multi_margin_loss_stub, lossext::MultiMarginFn);

namespace lossext::ops {
namespace {
constexpr const char* kOp = "multi_margin_loss";
constexpr RowwiseSpec kSpec{kOp, /*allow_prob=*/false, /*need_layout=*/true};

struct Problem {
  RowwiseProblem p;
  MultiMarginParams params;
  std::vector<int64_t> loss_shape;  // reduction none: the target's shape (torch: (N) or a 0-d loss)
};

// torch's checks (aten/src/ATen/native/LossMultiMargin.cpp: multi_margin_loss_shape_check, the
// Long target), messages naming the op and the shapes.
Problem prepare(const Tensor& input, const Tensor& target, int64_t p, double margin, const OptTensor& weight,
                int64_t reduction, bool want_grad) {
  TORCH_CHECK_VALUE(p == 1 || p == 2, kOp, ": only p == 1 and p == 2 supported (got p = ", p, ")");
  const int64_t nd = input.dim();
  TORCH_CHECK((nd == 2 && input.size(1) != 0) || (nd == 1 && input.size(0) != 0) || nd == 0, kOp,
              ": Expected non-empty vector or matrix with optional 0-dim batch size, but got: ",
              shape_str(input.sizes()));
  const int64_t nframe = nd == 2 ? input.size(0) : 1;
  const int64_t dim = nd == 0 ? 1 : input.size(nd - 1);
  TORCH_CHECK(target.dim() <= 1 && target.numel() == nframe, kOp,
              ": target tensor should be 1-D with size equal to the number of input samples (batch size). "
              "Expected target size [", nframe, "], but got ", shape_str(target.sizes()), ". Input has shape ",
              shape_str(input.sizes()), ".");
  const bool has_weight = weight.has_value() && weight->defined();
  if (has_weight) {
    TORCH_CHECK(weight->dim() <= 1 && weight->numel() == dim, kOp, ": inconsistent weight size, expected ", dim,
                " but got ", shape_str(weight->sizes()));
  }
  TORCH_CHECK(target.scalar_type() == at::kLong, kOp, ": expected scalar type Long but found ",
              target.scalar_type(), " (target of shape ", shape_str(target.sizes()), ")");
  // Views (no copies): the input as (N, C), the target as (N), the weight as (C).
  const Tensor x = nd == 2 ? input : input.reshape({1, dim});
  const OptTensor w = has_weight ? OptTensor(shaped(*weight, {dim})) : OptTensor();
  Problem pr{rowwise_prepare(kSpec, x, shaped(target, {nframe}), w, reduction, /*ignore_index=*/-100, want_grad,
                             false),
             MultiMarginParams{p, margin}, std::vector<int64_t>(target.sizes().begin(), target.sizes().end())};
  RowwiseArgs& a = pr.p.args;
  a.use_ignore_index = false;  // every target counts; -100 is out of range like any other
  a.weighted_mean = false;     // torch: the mean is the sum of the losses over N
  a.index_error = false;       // torch: RuntimeError "target out of range"
  return pr;
}

void run(const Problem& pr) {
  c10::OptionalDeviceGuard guard(pr.p.input.device());
  multi_margin_loss_stub(pr.p.input.device().type())(pr.p.args, pr.params);
}

}  // namespace

std::tuple<Tensor, Tensor, Tensor> multi_margin_loss(const Tensor& input, const Tensor& target, int64_t p,
                                                     double margin, const OptTensor& weight, int64_t reduction,
                                                     std::array<bool, 1> grad_mask) {
  // float16: the backward computes the gradient in float (rowwise_forward_grads, as the fake kernels).
  const bool reduce = reduction != static_cast<int64_t>(Reduction::None);
  const bool grads = reduce && rowwise_forward_grads({input, target, weight.value_or(Tensor())});
  Problem pr = prepare(input, target, p, margin, weight, reduction, grads && grad_mask[0]);
  Tensor loss = rowwise_loss_buffer(pr.p);
  Tensor saved = rowwise_saved_buffer(pr.p, MultiMarginRow<float, 1>::kSaved);
  pr.p.args.mode = RowMode::kForward;
  pr.p.args.loss = loss.data_ptr();
  run(pr);
  if (!reduce) loss = shaped(loss, pr.loss_shape);
  return {loss, rowwise_grad_like_input(pr.p, input), saved};
}

Tensor multi_margin_loss_backward(const Tensor& grad_output, const Tensor& input, const Tensor& target, int64_t p,
                                  double margin, const OptTensor& weight, int64_t reduction, const Tensor& saved,
                                  std::array<bool, 1> grad_mask) {
  Problem pr = prepare(input, target, p, margin, weight, reduction, grad_mask[0]);
  if (pr.p.grad_input.defined()) {
    const Tensor g = rowwise_set_grad_output(pr.p, grad_output, pr.loss_shape);
    const Tensor s = rowwise_use_saved(pr.p, saved, MultiMarginRow<float, 1>::kSaved);
    pr.p.args.mode = RowMode::kBackward;
    run(pr);
  }
  return rowwise_grad_like_input(pr.p, input);
}
}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  // `saved`: per sample, sum_{c != t} h'(z_c) (the target's gradient) for a separate backward.
  m.def("multi_margin_loss(Tensor input, Tensor target, int p, float margin, Tensor? weight, int reduction, "
        "bool[1] grad_mask) -> (Tensor, Tensor, Tensor)");
  m.def("multi_margin_loss_backward(Tensor grad_output, Tensor input, Tensor target, int p, float margin, "
        "Tensor? weight, int reduction, Tensor saved, bool[1] grad_mask) -> Tensor");
}

// The loss in ATen arithmetic, for second derivatives only (lossext/composite.h).
static at::Tensor multi_margin_loss_composite(const lossext::autograd::Args& a) {
  using namespace lossext::autograd;
  // sum_{j != y} w_y max(0, margin - x_y + x_j)^p / C per sample (torch has no second derivative;
  // this one is the loss's own).
  at::Tensor x = tensor(a, 0), y = tensor(a, 1);
  const at::Tensor w = tensor(a, 4);
  const bool unbatched = x.dim() <= 1;
  if (unbatched) x = x.reshape({1, -1}), y = y.reshape({1});
  const at::Tensor yi = y.unsqueeze(1);
  at::Tensor z = x.sub(x.gather(1, yi)).add(double_at(a, 3)).relu();
  if (int_at(a, 2) == 2) z = z.pow(2);
  z = z.scatter(1, yi, 0.0);
  if (w.defined()) z = z.mul(w.index_select(0, y).unsqueeze(1));
  at::Tensor per = z.sum(1).div(static_cast<double>(x.size(1)));
  if (unbatched) per = per.squeeze(0);
  return reduce(per, int_at(a, 5));
}
LOSSEXT_AUTOGRAD(multi_margin_loss, &multi_margin_loss_composite, "input");

namespace {
void impls(torch::Library& m) {
  m.impl("multi_margin_loss", &lossext::ops::multi_margin_loss);
  m.impl("multi_margin_loss_backward", &lossext::ops::multi_margin_loss_backward);
}
}  // namespace
LOSSEXT_IMPL_ALL_DEVICES(impls);
