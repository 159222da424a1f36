// Host-side helpers shared by every op (compiled once, not per ISA): input checks with ATen-style
// messages that name the op and show the shapes, and the generic pointwise runner.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>
#include <c10/util/Optional.h>
#include <lossext/common.h>
#include <lossext/dispatch.h>
#include <lossext/pointwise.h>

#include <string>
#include <vector>

namespace lossext {

// "[2, 3]"
std::string shape_str(at::IntArrayRef sizes);

// Unless `t` has a floating dtype lossext computes in (float16/bfloat16/32/64): NotImplementedError
// for `name` "input" (as torch's kernels), else RuntimeError.
void check_floating(const char* op, const char* name, const at::Tensor& t);
// RuntimeError unless every defined tensor lives on the device of `ref`.
void check_same_device(const char* op, const at::Tensor& ref, std::initializer_list<const at::Tensor*> others);

// The dtypes lossext computes in: float16, bfloat16, float32, float64.
bool is_loss_dtype(at::ScalarType st);
// RuntimeError unless `t` broadcasts to `sizes` without changing them (as t.expand(sizes) would).
void check_broadcasts_to(const char* op, const char* name, const at::Tensor& t, at::IntArrayRef sizes);

// An empty tensor that stands for "not computed" in an op's tuple of results.
at::Tensor not_computed(const at::Tensor& like);

// New buffers for an op's results: at::empty(sizes, opts) / at::empty_like(t, opts), which on the
// CPU go straight to the CPU allocator (at::detail::empty_cpu) instead of through the dispatcher
// (~0.1 us a buffer, three or four of which are a visible part of a loss at N=64). A host function
// runs on real tensors of its device only (fake and meta tensors take the fake kernels).
at::Tensor new_buffer(at::IntArrayRef sizes, const at::TensorOptions& opts);
at::Tensor new_buffer_like(const at::Tensor& t, const at::TensorOptions& opts);
inline at::Tensor new_buffer_like(const at::Tensor& t) { return new_buffer_like(t, t.options()); }

// t.reshape(shape), or t itself where it has that shape already: a view costs a view record
// (~0.2 us a call at N=64), and a returned gradient that is not a view is stolen by .grad.
inline at::Tensor shaped(const at::Tensor& t, at::IntArrayRef shape) {
  return t.sizes().equals(shape) ? t : t.reshape(shape);
}

// Runs a pointwise loss through `stub` (see lossext/pointwise.h).
//
// `inputs` are the functor's operands in order; an undefined tensor is the constant 1 (an absent
// weight). They broadcast to one shape. The first `n_grads` operands are differentiable.
//   forward, reduction None:       returns {loss (broadcast shape), empty...}
//   forward, reduction Mean/Sum:   returns {loss (0-d), grad_k...}; grad_k is computed in the same
//                                  pass where grad_mask[k] is set, scaled by the reduction, else empty;
//                                  always empty when an operand is float16 (the backward then applies
//                                  grad_output in float before rounding: loss scaling stays exact)
//   backward (grad_output given):  returns {grad_k...} = grad_output * d loss / d input_k (masked)
// `scale` multiplies the summed loss in Mean/Sum modes (1/numel for mean, 1 for sum) unless
// `scale_override` is given (kl_div's batchmean); an override also scales row sums (below) and the
// None-mode backward.
// The computation dtype follows torch's type promotion (at::result_type: a dimensioned operand's
// dtype wins over a 0-d one of the same category). With `integral_ok`, integer and bool operands
// are accepted (as torch's composite losses accept integer targets) and converted to that dtype;
// an all-integer call computes in the default float dtype, as torch's exp/log would.
// `row_sum`: reduction None returns, instead of the elementwise loss, scale_override times the sum
// of each row over the last dimension (shape: the broadcast shape without its last dimension;
// multilabel_soft_margin_loss). The backward then takes grad_output of that row shape and
// broadcasts it along the last dimension.
struct PointwiseCall {
  const char* op;
  const Stub<PointwiseFn>* stub;
  std::vector<at::Tensor> inputs;
  int n_grads = 1;
  Reduction reduction = Reduction::Mean;
  std::vector<bool> grad_mask;
  std::vector<double> params;
  c10::optional<double> scale_override;
  bool integral_ok = false;
  bool row_sum = false;
  // The dtype of the returned loss where it is not the computation dtype (bce_with_logits: torch's
  // composite writes its loss into a tensor of the target's dtype).
  c10::optional<at::ScalarType> loss_dtype;
  // Complex operands are accepted (the stub's functor declares kComponents = 2, lossext/pointwise.h):
  // the computation dtype is the real value type of the promoted one, the loss is real, and the
  // gradient of a complex operand is complex.
  bool complex_ok = false;
  // Operands the host op adds itself (an index table, a precomputed count): read and converted like
  // any other, but not part of the type promotion, so the loss keeps the dtype the user's operands
  // give (sigmoid_focal_loss_index's float32 class table beside a float16 input).
  std::vector<bool> internal;
};

std::vector<at::Tensor> pointwise_forward(const PointwiseCall& call);
std::vector<at::Tensor> pointwise_backward(const PointwiseCall& call, const at::Tensor& grad_output);

// The broadcast shape of the defined tensors; RuntimeError naming `op` if they do not broadcast.
std::vector<int64_t> broadcast_shape(const char* op, at::TensorList tensors, const std::vector<std::string>& names);

// The 0-d sum of every element of t, in t's dtype (deterministic, accumulated in double).
at::Tensor sum_all(const char* op, const at::Tensor& t);

// grad (full broadcast shape) summed down to `sizes` (the shape the operand had before it was
// broadcast), with our own deterministic kernel.
at::Tensor sum_to_size(const char* op, const at::Tensor& grad, at::IntArrayRef sizes);

// grad *= factor in place (lossext/scale_rows.h): grad a contiguous (N, C, S) buffer, factor 0-d
// or, with per_sample, of N * S elements in (n, s) order (any shape; converted to grad's dtype).
void scale_rows_(const char* op, const at::Tensor& grad, const at::Tensor& factor, int64_t N, int64_t C, int64_t S,
                 bool per_sample);

}  // namespace lossext

// The names every host op file (csrc/ops/<loss>.cpp) uses.
namespace lossext::ops {
using at::Tensor;
using OptTensor = c10::optional<at::Tensor>;
}  // namespace lossext::ops
