// cross_entropy host functions (CPU and CUDA share them; the stub picks the kernels).
#include <lossext/host.h>
#include <lossext/registration.h>
#include <lossext/rowwise_host.h>
#include <losses/cross_entropy.h>

#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::cross_entropy_stub, lossext::RowwiseFn);

namespace lossext::ops {
namespace {
constexpr RowwiseSpec kSpec{"cross_entropy", /*allow_prob=*/true, /*need_layout=*/true};

// Only probability targets have a gradient.
void check_target_mask(const RowwiseProblem& p, std::array<bool, 2> grad_mask) {
  TORCH_CHECK(!grad_mask[1] || p.args.prob, "cross_entropy: grad_mask[1] asks for the gradient of class-index ",
              "targets (dtype ", p.target_dtype, "), which have none");
}

void run(const RowwiseProblem& p) {
  c10::OptionalDeviceGuard guard(p.input.device());
  cross_entropy_stub(p.input.device().type())(p.args);
}

// Forward into fresh buffers; grad_input is p.grad_input (fresh, or the input itself in place).
std::pair<Tensor, Tensor> forward(RowwiseProblem& p) {
  Tensor loss = rowwise_loss_buffer(p);
  Tensor lse = rowwise_sample_buffer(p, rowwise_math_dtype(p.args.dtype));
  p.args.mode = RowMode::kForward;
  p.args.loss = loss.data_ptr();
  p.args.lse = lse.data_ptr();
  run(p);
  return {loss, lse};
}
}  // namespace

std::tuple<Tensor, Tensor, Tensor, Tensor> cross_entropy(const Tensor& input, const Tensor& target,
                                                         const OptTensor& weight, int64_t reduction,
                                                         int64_t ignore_index, double label_smoothing,
                                                         std::array<bool, 2> grad_mask) {
  const bool reduce = reduction != static_cast<int64_t>(Reduction::None);
  RowwiseProblem p = rowwise_prepare(kSpec, input, target, weight, reduction, ignore_index, label_smoothing,
                                     reduce && grad_mask[0], reduce && grad_mask[1]);
  check_target_mask(p, grad_mask);
  auto [loss, lse] = forward(p);
  return {loss, rowwise_finish_grad(p.grad_input, input, p.input_dtype),
          rowwise_finish_grad(p.grad_target, target, p.target_dtype), lse};
}

std::tuple<Tensor, Tensor> cross_entropy_backward(const Tensor& grad_output, const Tensor& input, const Tensor& target,
                                                  const OptTensor& weight, int64_t reduction, int64_t ignore_index,
                                                  double label_smoothing, const Tensor& lse,
                                                  std::array<bool, 2> grad_mask) {
  RowwiseProblem p = rowwise_prepare(kSpec, input, target, weight, reduction, ignore_index, label_smoothing,
                                     grad_mask[0], grad_mask[1]);
  check_target_mask(p, grad_mask);
  if (p.grad_input.defined() || p.grad_target.defined()) {
    const Tensor go = rowwise_set_grad_output(p, grad_output);
    const Tensor l = rowwise_check_samples(p, lse, rowwise_math_dtype(p.args.dtype), "lse");
    p.args.mode = RowMode::kBackward;
    p.args.lse = const_cast<void*>(l.const_data_ptr());
    run(p);
  }
  return {rowwise_finish_grad(p.grad_input, input, p.input_dtype),
          rowwise_finish_grad(p.grad_target, target, p.target_dtype)};
}

Tensor cross_entropy_inplace(Tensor& input, const Tensor& target, const OptTensor& weight, int64_t reduction,
                             int64_t ignore_index, double label_smoothing) {
  RowwiseProblem p = rowwise_prepare(kSpec, input, target, weight, reduction, ignore_index, label_smoothing,
                                     /*want_grad_input=*/true, /*want_grad_target=*/false, /*inplace=*/true);
  return forward(p).first;
}

namespace {
// grad *= grad_output, in place, through the row-wise kScaleInPlace mode: grad is a contiguous
// buffer viewed as (N, C, S); grad_output is 0-d for a reduced loss (skipped on the device when it
// is 1), else one value per (n, s) sample.
void scale_rows_in_place(const char* op, const Tensor& grad, const Tensor& grad_output, int64_t reduction,
                         int64_t N, int64_t C, int64_t S, std::vector<int64_t> sample_shape) {
  check_floating(op, "grad", grad);
  RowwiseProblem p;
  p.op = op;
  RowwiseArgs& a = p.args;
  a.mode = RowMode::kScaleInPlace;
  a.reduction = to_reduction(reduction, p.op);
  a.dtype = grad.scalar_type();
  a.N = N;
  a.C = C;
  a.S = S;
  a.spatial = a.S > 1;
  a.st[kRowGradInput][0] = a.C * a.S;
  a.st[kRowGradInput][1] = a.S;
  a.st[kRowGradInput][2] = 1;
  a.grad_input = grad.data_ptr();
  p.input = grad;
  p.sample_shape = std::move(sample_shape);
  const Tensor go = rowwise_set_grad_output(p, grad_output);
  if (grad.numel() > 0) run(p);
}
}  // namespace

void cross_entropy_inplace_backward(Tensor& grad, const Tensor& grad_output, int64_t reduction) {
  // grad is the contiguous (C) / (N, C, d1..dk) buffer cross_entropy_inplace wrote.
  TORCH_CHECK(grad.dim() >= 1 && grad.is_contiguous(), "cross_entropy_inplace_backward: expected a contiguous ",
              "gradient with a class dimension, but got shape ", shape_str(grad.sizes()), " and strides ",
              shape_str(grad.strides()));
  const int64_t d = grad.dim();
  int64_t S = 1;
  for (int64_t i = 2; i < d; ++i) S *= grad.size(i);
  std::vector<int64_t> sample_shape(grad.sizes().begin(), grad.sizes().end());
  sample_shape.erase(sample_shape.begin() + (d == 1 ? 0 : 1));
  scale_rows_in_place("cross_entropy_inplace_backward", grad, grad_output, reduction, d == 1 ? 1 : grad.size(0),
                      d == 1 ? grad.size(0) : grad.size(1), S, std::move(sample_shape));
}

void scale_grad_(Tensor& grad, const Tensor& grad_output) {
  // Any dense gradient (contiguous or a permutation of it) occupies numel consecutive elements
  // from its data pointer: scaled as one flat row.
  TORCH_CHECK(grad.is_non_overlapping_and_dense(), "scale_grad_: expected a dense gradient, but got shape ",
              shape_str(grad.sizes()), " and strides ", shape_str(grad.strides()));
  TORCH_CHECK(grad_output.dim() == 0, "scale_grad_: expected a 0-d grad_output, but got shape ",
              shape_str(grad_output.sizes()));
  scale_rows_in_place("scale_grad_", grad, grad_output, /*reduction=*/2, 1, grad.numel(), 1, {});
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("cross_entropy(Tensor input, Tensor target, Tensor? weight, int reduction, int ignore_index, "
        "float label_smoothing, bool[2] grad_mask) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("cross_entropy_backward(Tensor grad_output, Tensor input, Tensor target, Tensor? weight, int reduction, "
        "int ignore_index, float label_smoothing, Tensor lse, bool[2] grad_mask) -> (Tensor, Tensor)");
  // Opt-in in-place gradient: writes d loss / d input (reduction-scaled) over the input and returns
  // the loss; the backward multiplies it by grad_output in place.
  m.def("cross_entropy_inplace(Tensor(a!) input, Tensor target, Tensor? weight, int reduction, int ignore_index, "
        "float label_smoothing) -> Tensor");
  m.def("cross_entropy_inplace_backward(Tensor(a!) grad, Tensor grad_output, int reduction) -> ()");
  // grad *= grad_output (0-d) in place; a no-op when grad_output is 1, decided on the device. For
  // the eager backward of a gradient the forward wrote and nothing else holds (lossext/_registry.py).
  m.def("scale_grad_(Tensor(a!) grad, Tensor grad_output) -> ()");
}

namespace {
void impls(torch::Library& m) {
  m.impl("cross_entropy", &lossext::ops::cross_entropy);
  m.impl("cross_entropy_backward", &lossext::ops::cross_entropy_backward);
  m.impl("cross_entropy_inplace", &lossext::ops::cross_entropy_inplace);
  m.impl("cross_entropy_inplace_backward", &lossext::ops::cross_entropy_inplace_backward);
  m.impl("scale_grad_", &lossext::ops::scale_grad_);
}
}  // namespace
LOSSEXT_IMPL_ALL_DEVICES(impls);
