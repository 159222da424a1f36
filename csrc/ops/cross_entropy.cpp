// cross_entropy host functions (CPU and CUDA share them; the stub picks the kernels).
#include <lossext/autograd.h>
#include <lossext/composite.h>
#include <lossext/host.h>
#include <lossext/registration.h>
#include <lossext/rowwise_host.h>
#include <losses/cross_entropy.h>

#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::cross_entropy_stub, lossext::CrossEntropyFn);

namespace lossext::ops {
namespace {
constexpr RowwiseSpec kSpec{"cross_entropy", /*allow_prob=*/true, /*need_layout=*/true};

CrossEntropyParams params_of(double label_smoothing, const Tensor& input, const OptTensor& weight,
                             int64_t reduction) {
  TORCH_CHECK(!(label_smoothing > 1.0), "cross_entropy: label_smoothing must be between 0.0 and 1.0. Got: ",
              label_smoothing);
  // torch's smoothed mean gathers the weight with a 1-D index: a K-dim input's (C, 1) weight fails
  // there (sum and none compute; so does an empty input; an all-ignored batch raises here, NaN in torch).
  TORCH_CHECK(!(label_smoothing > 0.0) || !weight.has_value() || weight->dim() <= 1 || input.numel() == 0 ||
                  reduction != static_cast<int64_t>(Reduction::Mean), "cross_entropy: with ",
              "label_smoothing and reduction='mean' the weight must be 1-D, got weight of shape ", weight->sizes(),
              " (torch: Index tensor must have the same number of dimensions as input tensor)");
  return {label_smoothing > 0.0 ? label_smoothing : 0.0};  // torch ignores negative (and NaN) values
}

// Only probability targets have a gradient.
void check_target_mask(const RowwiseProblem& p, std::array<bool, 2> grad_mask) {
  TORCH_CHECK(!grad_mask[1] || p.prob, "cross_entropy: grad_mask[1] asks for the gradient of class-index ",
              "targets (dtype ", p.target_dtype, "), which have none");
}

void run(const RowwiseProblem& p, const CrossEntropyParams& cp) {
  c10::OptionalDeviceGuard guard(p.input.device());
  cross_entropy_stub(p.input.device().type())(p.args, cp);
}

// Forward into fresh buffers; grad_input is p.grad_input (fresh, or the input itself in place).
std::pair<Tensor, Tensor> forward(RowwiseProblem& p, const CrossEntropyParams& cp) {
  Tensor loss = rowwise_loss_buffer(p);
  Tensor saved = rowwise_saved_buffer(p, ce_saved_count(p.prob));
  p.args.mode = RowMode::kForward;
  p.args.loss = loss.data_ptr();
  run(p, cp);
  return {loss, saved};
}
}  // namespace

std::tuple<Tensor, Tensor, Tensor, Tensor> cross_entropy(const Tensor& input, const Tensor& target,
                                                         const OptTensor& weight, int64_t reduction,
                                                         int64_t ignore_index, double label_smoothing,
                                                         std::array<bool, 2> grad_mask) {
  const CrossEntropyParams cp = params_of(label_smoothing, input, weight, reduction);
  const bool grads = reduction != static_cast<int64_t>(Reduction::None) && rowwise_forward_grads({input, target, weight.value_or(Tensor())});
  RowwiseProblem p = rowwise_prepare(kSpec, input, target, weight, reduction, ignore_index, grads && grad_mask[0],
                                     grads && grad_mask[1]);
  check_target_mask(p, grad_mask);
  auto [loss, saved] = forward(p, cp);
  return {loss, rowwise_finish_grad(p.grad_input, input, p.input_dtype),
          rowwise_finish_grad(p.grad_target, target, p.target_dtype), saved};
}

std::tuple<Tensor, Tensor> cross_entropy_backward(const Tensor& grad_output, const Tensor& input, const Tensor& target,
                                                  const OptTensor& weight, int64_t reduction, int64_t ignore_index,
                                                  double label_smoothing, const Tensor& saved,
                                                  std::array<bool, 2> grad_mask) {
  const CrossEntropyParams cp = params_of(label_smoothing, input, weight, reduction);
  RowwiseProblem p =
      rowwise_prepare(kSpec, input, target, weight, reduction, ignore_index, grad_mask[0], grad_mask[1]);
  check_target_mask(p, grad_mask);
  if (p.grad_input.defined() || p.grad_target.defined()) {
    const Tensor go = rowwise_set_grad_output(p, grad_output);
    const Tensor s = rowwise_use_saved(p, saved, ce_saved_count(p.prob));
    p.args.mode = RowMode::kBackward;
    run(p, cp);
  }
  return {rowwise_finish_grad(p.grad_input, input, p.input_dtype),
          rowwise_finish_grad(p.grad_target, target, p.target_dtype)};
}

Tensor cross_entropy_inplace(Tensor& input, const Tensor& target, const OptTensor& weight, int64_t reduction,
                             int64_t ignore_index, double label_smoothing) {
  const CrossEntropyParams cp = params_of(label_smoothing, input, weight, reduction);
  RowwiseProblem p = rowwise_prepare(kSpec, input, target, weight, reduction, ignore_index,
                                     /*want_grad_input=*/true, /*want_grad_target=*/false, /*inplace=*/true);
  return forward(p, cp).first;
}

void cross_entropy_inplace_backward(Tensor& grad, const Tensor& grad_output, int64_t reduction) {
  // grad is the contiguous (C) / (N, C, d1..dk) buffer cross_entropy_inplace wrote; every element
  // of sample (n, s) is multiplied by its grad_output.
  const char* op = "cross_entropy_inplace_backward";
  TORCH_CHECK(grad.dim() >= 1 && grad.is_contiguous(), op, ": expected a contiguous gradient with a class dimension, ",
              "but got shape ", shape_str(grad.sizes()), " and strides ", shape_str(grad.strides()));
  const Reduction r = to_reduction(reduction, op);
  const int64_t d = grad.dim();
  int64_t S = 1;
  for (int64_t i = 2; i < d; ++i) S *= grad.size(i);
  std::vector<int64_t> sample_shape(grad.sizes().begin(), grad.sizes().end());
  sample_shape.erase(sample_shape.begin() + (d == 1 ? 0 : 1));
  if (r == Reduction::None) {
    TORCH_CHECK(grad_output.sizes().equals(sample_shape), op, ": expected grad_output of shape ",
                shape_str(sample_shape), ", but got ", shape_str(grad_output.sizes()));
  }
  scale_rows_(op, grad, grad_output, d == 1 ? 1 : grad.size(0), d == 1 ? grad.size(0) : grad.size(1), S,
              r == Reduction::None);
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("cross_entropy(Tensor input, Tensor target, Tensor? weight, int reduction, int ignore_index, "
        "float label_smoothing, bool[2] grad_mask) -> (Tensor, Tensor, Tensor, Tensor)");
  // `saved`: the forward's per-sample row statistics (m, log z[, Sy]) for a separate backward.
  m.def("cross_entropy_backward(Tensor grad_output, Tensor input, Tensor target, Tensor? weight, int reduction, "
        "int ignore_index, float label_smoothing, Tensor saved, bool[2] grad_mask) -> (Tensor, Tensor)");
  // Opt-in in-place gradient: writes d loss / d input (reduction-scaled) over the input and returns
  // the loss; the backward multiplies it by grad_output in place.
  m.def("cross_entropy_inplace(Tensor(a!) input, Tensor target, Tensor? weight, int reduction, int ignore_index, "
        "float label_smoothing) -> Tensor");
  m.def("cross_entropy_inplace_backward(Tensor(a!) grad, Tensor grad_output, int reduction) -> ()");
}

// The loss in ATen arithmetic, for second derivatives only (lossext/composite.h).
static at::Tensor cross_entropy_composite(const lossext::autograd::Args& a) {
  using namespace lossext::autograd;
  return cross_entropy(tensor(a, 0), tensor(a, 1), tensor(a, 2), int_at(a, 3), int_at(a, 4), double_at(a, 5), true);
}
LOSSEXT_AUTOGRAD(cross_entropy, &cross_entropy_composite, "input", "target");

namespace {
void impls(torch::Library& m) {
  m.impl("cross_entropy", &lossext::ops::cross_entropy);
  m.impl("cross_entropy_backward", &lossext::ops::cross_entropy_backward);
  m.impl("cross_entropy_inplace", &lossext::ops::cross_entropy_inplace);
  m.impl("cross_entropy_inplace_backward", &lossext::ops::cross_entropy_inplace_backward);
}
}  // namespace
LOSSEXT_IMPL_ALL_DEVICES(impls);
