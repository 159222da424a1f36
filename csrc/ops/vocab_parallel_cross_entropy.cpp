// vocab_parallel_cross_entropy host functions (losses/vocab_parallel_cross_entropy.h): the three
// native steps around lossext.distributed's one all_gather. Each rank calls
//   stats(logits_slice, target, vocab_start, weight, ...)      -> [N, k]        (pass 1 over the slice)
//   combine(all_gather(stats), target, weight, ...)            -> loss, saved, denominator
//   backward(grad_output, logits_slice, target, ..., saved, denominator) -> the slice's gradient
// The collective is Python's (torch.distributed), so the autograd is a Python autograd.Function
// (lossext/distributed.py): a C++ LOSSEXT_AUTOGRAD row wraps one op, and the forward here is three
// ops with a process-group collective between them.
// The loss needs nothing but the gathered statistics, so the forward reads the logits once (stats)
// and the backward once more (the gradient, grad_output folded in): two passes, as cross_entropy.
#include <lossext/host.h>
#include <lossext/registration.h>
#include <lossext/rowwise_host.h>
#include <losses/vocab_parallel_cross_entropy.h>

#include <ATen/ops/empty.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::vpce_stats_stub, lossext::VpceRowFn);
LOSSEXT_DEFINE_STUB(lossext::vpce_grad_stub, lossext::VpceRowFn);
LOSSEXT_DEFINE_STUB(lossext::vpce_combine_stub, lossext::VpceCombineFn);

namespace lossext::ops {

using at::Tensor;
constexpr const char* kVpceOp = "vocab_parallel_cross_entropy";

// The class weights of the slice [vocab_start, vocab_start + classes) of the full (V) weight.
OptTensor vpce_weight_slice(const char* op, const OptTensor& weight, int64_t vocab_start, int64_t classes,
                            at::ScalarType dtype) {
  TORCH_CHECK(vocab_start >= 0, op, ": vocab_start must be >= 0, got ", vocab_start);
  if (!weight.has_value()) return OptTensor();
  const Tensor& w = *weight;
  TORCH_CHECK(w.dim() == 1, op, ": expected the full (V,) class weight, got shape ", shape_str(w.sizes()));
  TORCH_CHECK(vocab_start + classes <= w.size(0), op, ": the vocabulary slice [", vocab_start, ", ",
              vocab_start + classes, ") is not inside the class weight of ", w.size(0), " classes");
  TORCH_CHECK(w.scalar_type() == dtype, op, ": expected scalar type ", dtype, " but found ", w.scalar_type(),
              " (weight)");
  return w.narrow(0, vocab_start, classes);
}

CrossEntropyParams vpce_params(const char* op, double label_smoothing) {
  TORCH_CHECK(!(label_smoothing > 1.0), op, ": label_smoothing must be between 0.0 and 1.0. Got: ", label_smoothing);
  CrossEntropyParams cp;
  cp.smoothing = label_smoothing > 0.0 ? label_smoothing : 0.0;  // torch ignores negative values
  return cp;
}

// A (N, V_local) slice and its (N) class targets as a row-wise problem over the slice.
RowwiseProblem vpce_problem(const char* op, const Tensor& logits, const Tensor& target, int64_t vocab_start,
                            const OptTensor& weight, int64_t reduction, int64_t ignore_index, bool want_grad,
                            bool inplace) {
  TORCH_CHECK(logits.dim() == 2, op, ": expected logits of shape (N, V_local), got ", shape_str(logits.sizes()));
  TORCH_CHECK_NOT_IMPLEMENTED(!target.is_floating_point(), op, ": probability targets are not supported (",
                              "target of dtype ", target.scalar_type(), "); pass global class indices");
  const RowwiseSpec spec{op, /*allow_prob=*/false, /*need_layout=*/true};
  const OptTensor ws = vpce_weight_slice(op, weight, vocab_start, logits.size(1), logits.scalar_type());
  RowwiseProblem p = rowwise_prepare(spec, logits, target, ws, reduction, ignore_index, want_grad, false, inplace);
  p.args.class_slice = true;
  p.args.class_offset = vocab_start;
  return p;
}

// The rank's [N, k] statistics of a problem prepared by vpce_problem, into `saved` rows (math type).
void vpce_run_stats(RowwiseProblem& p, const CrossEntropyParams& cp, void* saved, const Tensor& scratch) {
  p.args.mode = RowMode::kForward;
  p.args.reduction = Reduction::Sum;  // the driver's loss (always 0 here) goes to a scratch scalar
  p.args.loss = scratch.data_ptr();
  p.args.saved = saved;
  p.args.grad_input = nullptr;
  vpce_stats_stub(p.input.device().type())(p.args, cp);
}

namespace {

Tensor stats(const Tensor& logits, const Tensor& target, int64_t vocab_start, const OptTensor& weight,
             int64_t ignore_index, double label_smoothing) {
  const CrossEntropyParams cp = vpce_params(kVpceOp, label_smoothing);
  check_same_device(kVpceOp, logits, {&target, weight.has_value() ? &*weight : nullptr});
  RowwiseProblem p = vpce_problem(kVpceOp, logits, target, vocab_start, weight, 2, ignore_index, false, false);
  c10::OptionalDeviceGuard guard(logits.device());
  Tensor out = at::empty({logits.size(0), vpce_stats_count(cp.smoothing > 0)},
                         logits.options().dtype(rowwise_math_dtype(logits.scalar_type())));
  vpce_run_stats(p, cp, out.data_ptr(), at::empty({}, p.input.options()));
  return out;
}

}  // namespace

std::tuple<Tensor, Tensor, Tensor> vpce_combine(const Tensor& stats, const Tensor& target, const OptTensor& weight,
                                                int64_t reduction, int64_t ignore_index, double label_smoothing,
                                                at::ScalarType dtype) {
  const char* op = kVpceOp;
  const CrossEntropyParams cp = vpce_params(op, label_smoothing);
  const Reduction red = to_reduction(reduction, op);
  TORCH_CHECK(is_loss_dtype(dtype), op, ": expected a floating loss dtype, got ", dtype);
  const int64_t k = vpce_stats_count(cp.smoothing > 0);
  TORCH_CHECK(stats.dim() == 3 && stats.size(2) == k && stats.scalar_type() == rowwise_math_dtype(dtype), op,
              ": expected the gathered statistics of shape (P, N, ", k, ") and dtype ", rowwise_math_dtype(dtype),
              ", got ", shape_str(stats.sizes()), " ", stats.scalar_type());
  const int64_t N = stats.size(1);
  TORCH_CHECK(target.dim() == 1 && target.size(0) == N && !target.is_floating_point(), op,
              ": expected class targets of shape (", N, "), got ", shape_str(target.sizes()), " ", target.scalar_type());
  check_same_device(op, stats, {&target, weight.has_value() ? &*weight : nullptr});
  c10::OptionalDeviceGuard guard(stats.device());
  const Tensor st = stats.contiguous();
  const Tensor t = target.to(at::kLong).contiguous();
  Tensor w;
  if (weight.has_value()) {
    TORCH_CHECK(weight->dim() == 1 && weight->scalar_type() == dtype, op, ": expected a (V,) class weight of dtype ",
                dtype, ", got ", shape_str(weight->sizes()), " ", weight->scalar_type());
    w = weight->contiguous();
  }
  const auto opts = stats.options();
  Tensor loss = red == Reduction::None ? at::empty({N}, opts.dtype(dtype)) : at::empty({}, opts.dtype(dtype));
  Tensor saved = at::empty({N, kVpceSaved}, opts);
  Tensor den = at::empty({1}, opts.dtype(at::kDouble));
  VpceCombineArgs a;
  a.dtype = dtype;
  a.P = st.size(0);
  a.N = N;
  a.k = k;
  a.stats = st.const_data_ptr();
  a.target = t.const_data_ptr<int64_t>();
  a.weight = w.defined() ? w.const_data_ptr() : nullptr;
  a.V = w.defined() ? w.size(0) : 0;
  a.ignore_index = ignore_index;
  a.smoothing = cp.smoothing;
  a.reduction = red;
  a.loss = loss.data_ptr();
  a.saved = saved.data_ptr();
  a.denominator = den.data_ptr<double>();
  vpce_combine_stub(stats.device().type())(a, op);
  return {loss, saved, den};
}

namespace {

Tensor backward(const Tensor& grad_output, const Tensor& logits, const Tensor& target, const OptTensor& weight,
                int64_t vocab_start, int64_t reduction, int64_t ignore_index, double label_smoothing,
                const Tensor& saved, const Tensor& denominator) {
  const CrossEntropyParams cp = vpce_params(kVpceOp, label_smoothing);
  check_same_device(kVpceOp, logits, {&target, &saved, &denominator, weight.has_value() ? &*weight : nullptr});
  RowwiseProblem p =
      vpce_problem(kVpceOp, logits, target, vocab_start, weight, reduction, ignore_index, true, false);
  TORCH_CHECK(denominator.numel() == 1 && denominator.scalar_type() == at::kDouble, kVpceOp,
              ": expected the forward's 1-element float64 denominator, got ", shape_str(denominator.sizes()), " ",
              denominator.scalar_type());
  c10::OptionalDeviceGuard guard(logits.device());
  const Tensor go = rowwise_set_grad_output(p, grad_output);
  const Tensor s = rowwise_use_saved(p, saved, kVpceSaved);
  const Tensor den = denominator.contiguous();
  p.args.mean_denominator = den.const_data_ptr<double>();
  p.args.mode = RowMode::kBackward;
  vpce_grad_stub(p.input.device().type())(p.args, cp);
  return rowwise_finish_grad(p.grad_input, logits, p.input_dtype);
}

}  // namespace
}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  // The rank's per-row statistics of its vocabulary slice: (N, k) math type, k = 3 (5 with smoothing).
  m.def("vocab_parallel_cross_entropy_stats(Tensor logits, Tensor target, int vocab_start, Tensor? weight, "
        "int ignore_index, float label_smoothing) -> Tensor");
  // The loss from the gathered (P, N, k) statistics, the combined per-row statistics of the backward
  // and the mean's denominator (1 float64); identical bits on every rank.
  m.def("vocab_parallel_cross_entropy_combine(Tensor stats, Tensor target, Tensor? weight, int reduction, "
        "int ignore_index, float label_smoothing, ScalarType dtype) -> (Tensor, Tensor, Tensor)");
  m.def("vocab_parallel_cross_entropy_backward(Tensor grad_output, Tensor logits, Tensor target, Tensor? weight, "
        "int vocab_start, int reduction, int ignore_index, float label_smoothing, Tensor saved, Tensor denominator) "
        "-> Tensor");
}

namespace {
void impls(torch::Library& m) {
  m.impl("vocab_parallel_cross_entropy_stats", &lossext::ops::stats);
  m.impl("vocab_parallel_cross_entropy_combine", &lossext::ops::vpce_combine);
  m.impl("vocab_parallel_cross_entropy_backward", &lossext::ops::backward);
}
}  // namespace
LOSSEXT_IMPL_ALL_DEVICES(impls);
