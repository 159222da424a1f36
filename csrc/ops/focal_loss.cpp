// focal_loss (softmax form) host functions: cross_entropy's argument rules (rowwise_prepare), the
// focal options, the row-wise driver with the functor of losses/focal_loss.h.
#include <lossext/autograd.h>
#include <lossext/composite.h>
#include <lossext/host.h>
#include <lossext/registration.h>
#include <lossext/rowwise_host.h>
#include <losses/focal_loss.h>

#include <ATen/ops/empty.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

LOSSEXT_DEFINE_STUB(lossext::focal_loss_stub, lossext::FocalFn);

namespace lossext::ops {
namespace {
constexpr const char* kOp = "focal_loss";
constexpr RowwiseSpec kSpec{kOp, /*allow_prob=*/false, /*need_layout=*/true};
// Saved per sample: m, log z (as cross_entropy's plain kind), and Sk when smoothed (losses/focal_loss.h).
int64_t saved_count(double smoothing) { return smoothing > 0 ? 3 : 2; }

struct Problem {
  RowwiseProblem p;
  FocalParams params;
  Tensor alpha;  // the per-class alpha as the kernels read it (kept alive)
  Tensor sweep;  // smoothed: u_c = w_c alpha_c in the math type, the sweeps' w (kept alive)
};

Problem prepare(const Tensor& input, const Tensor& target, const OptTensor& weight, const OptTensor& alpha,
                double alpha_value, double gamma, int64_t reduction, int64_t ignore_index, double smoothing,
                bool want_grad) {
  TORCH_CHECK_VALUE(gamma >= 0 && std::isfinite(gamma), kOp, ": gamma must be a finite number >= 0, got ", gamma);
  TORCH_CHECK(!(smoothing > 1.0), kOp, ": label_smoothing must be between 0.0 and 1.0. Got: ", smoothing);
  Problem pr{rowwise_prepare(kSpec, input, target, weight, reduction, ignore_index, want_grad, false),
             FocalParams{gamma, alpha_value, nullptr, smoothing > 0 ? smoothing : 0.0}, Tensor(), Tensor()};
  if (alpha.has_value() && alpha->defined()) {
    const int64_t C = pr.p.args.C;
    TORCH_CHECK(alpha->dim() == 1 && alpha->size(0) == C, kOp, ": expected alpha of shape [", C,
                "] (one value per class), but got ", shape_str(alpha->sizes()));
    check_floating(kOp, "alpha", *alpha);
    check_same_device(kOp, input, {&*alpha});
    pr.alpha = alpha->to(rowwise_math_dtype(pr.p.args.dtype)).contiguous();
    pr.params.alpha_c = pr.alpha.const_data_ptr();
    if (pr.params.smoothing > 0) {  // the smoothing sum's per-class factor w_c alpha_c
      pr.sweep = pr.p.args.weight ? pr.alpha.mul(weight->to(pr.alpha.scalar_type()).reshape({-1})) : pr.alpha;
      pr.sweep = pr.sweep.contiguous();
      pr.p.args.sweep_weight = pr.sweep.const_data_ptr();
    }
  }
  return pr;
}

void run(const Problem& pr) {
  c10::OptionalDeviceGuard guard(pr.p.input.device());
  focal_loss_stub(pr.p.input.device().type())(pr.p.args, pr.params);
}
}  // namespace

std::tuple<Tensor, Tensor, Tensor> focal_loss(const Tensor& input, const Tensor& target, const OptTensor& weight,
                                              const OptTensor& alpha, double alpha_value, double gamma,
                                              int64_t reduction, int64_t ignore_index, double label_smoothing,
                                              std::array<bool, 1> grad_mask) {
  const bool grads = reduction != static_cast<int64_t>(Reduction::None) &&
                     rowwise_forward_grads({input, target, weight.value_or(Tensor())});
  Problem pr = prepare(input, target, weight, alpha, alpha_value, gamma, reduction, ignore_index, label_smoothing,
                       grads && grad_mask[0]);
  Tensor loss = rowwise_loss_buffer(pr.p);
  Tensor saved = rowwise_saved_buffer(pr.p, saved_count(pr.params.smoothing));
  pr.p.args.mode = RowMode::kForward;
  pr.p.args.loss = loss.data_ptr();
  run(pr);
  return {loss, rowwise_grad_like_input(pr.p, input), saved};
}

Tensor focal_loss_backward(const Tensor& grad_output, const Tensor& input, const Tensor& target,
                           const OptTensor& weight, const OptTensor& alpha, double alpha_value, double gamma,
                           int64_t reduction, int64_t ignore_index, double label_smoothing, const Tensor& saved,
                           std::array<bool, 1> grad_mask) {
  Problem pr = prepare(input, target, weight, alpha, alpha_value, gamma, reduction, ignore_index, label_smoothing,
                       grad_mask[0]);
  if (pr.p.grad_input.defined()) {
    const Tensor go = rowwise_set_grad_output(pr.p, grad_output);
    const Tensor s = rowwise_use_saved(pr.p, saved, saved_count(pr.params.smoothing));
    pr.p.args.mode = RowMode::kBackward;
    run(pr);
  }
  return rowwise_grad_like_input(pr.p, input);
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  // `saved`: the forward's per-sample (m, log z[, Sk when smoothed]) for a separate backward. alpha:
  // a per-class tensor, else the float alpha_value (1: none).
  m.def("focal_loss(Tensor input, Tensor target, Tensor? weight, Tensor? alpha, float alpha_value, float gamma, "
        "int reduction, int ignore_index, float label_smoothing, bool[1] grad_mask) -> (Tensor, Tensor, Tensor)");
  m.def("focal_loss_backward(Tensor grad_output, Tensor input, Tensor target, Tensor? weight, Tensor? alpha, "
        "float alpha_value, float gamma, int reduction, int ignore_index, float label_smoothing, Tensor saved, "
        "bool[1] grad_mask) -> Tensor");
}

// The loss in ATen arithmetic, for second derivatives only (lossext/composite.h).
static at::Tensor focal_loss_composite(const lossext::autograd::Args& a) {
  using namespace lossext::autograd;
  // -w_t a_t (1 - p_t)^gamma log p_t per row, plus eps/C sum_c of the same over every class when
  // smoothed ((1-eps) on the target's term); the weighted mean as cross_entropy's.
  const at::Tensor x = tensor(a, 0), t = tensor(a, 1), w = tensor(a, 2), al = tensor(a, 3);
  const double gamma = double_at(a, 5), eps = std::max(0.0, double_at(a, 8));
  const int64_t reduction = int_at(a, 6), cd = x.dim() >= 2 ? 1 : 0;
  const at::Tensor ign = t.eq(int_at(a, 7)), tc = t.masked_fill(ign, 0);
  const at::Tensor lps = x.log_softmax(cd);
  const at::Tensor lp = lps.gather(cd, tc.unsqueeze(cd)).squeeze(cd);
  const at::Tensor keep = ign.logical_not().to(lp.scalar_type());
  const at::Tensor wy = w.defined() ? w.reshape(-1).index_select(0, tc.reshape(-1)).reshape(tc.sizes()).mul(keep) : keep;
  const at::Tensor at_ = al.defined() ? al.reshape(-1).index_select(0, tc.reshape(-1)).reshape(tc.sizes())
                                      : lp.new_full({}, double_at(a, 4));
  auto focal = [&](const at::Tensor& l) { return gamma != 0 ? l.neg().mul(l.exp().neg().add(1).pow(gamma)) : l.neg(); };
  at::Tensor l = focal(lp).mul(wy).mul(at_);
  if (eps > 0) {  // u_c = w_c alpha_c as a (C, 1, ..) column against the class dim
    std::vector<int64_t> col(x.dim() - cd, 1);
    col[0] = -1;
    at::Tensor u = al.defined() ? al : x.new_full({x.size(cd)}, double_at(a, 4));
    if (w.defined()) u = u.mul(w.reshape(-1));
    const at::Tensor sm = focal(lps).mul(u.reshape(col)).sum(cd).mul(keep);
    l = l.mul(1.0 - eps).add(sm.mul(eps / static_cast<double>(x.size(cd))));
  }
  return reduction == 1 ? l.sum().div(wy.sum()) : reduce(l, reduction);
}
LOSSEXT_AUTOGRAD(focal_loss, &focal_loss_composite, "input");

namespace {
void impls(torch::Library& m) {
  m.impl("focal_loss", &lossext::ops::focal_loss);
  m.impl("focal_loss_backward", &lossext::ops::focal_loss_backward);
}
}  // namespace
LOSSEXT_IMPL_ALL_DEVICES(impls);
