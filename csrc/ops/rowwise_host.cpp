// Host side of the row-wise losses (see lossext/rowwise_host.h).
#include <lossext/fresh.h>
#include <lossext/host.h>
#include <lossext/rowwise_host.h>

#include <algorithm>

#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/core/ScalarType.h>

#include <array>

namespace lossext {
namespace {

// Strides of dims [from, end) merged into one (size-1 dims skipped); false if they do not merge.
bool merge_tail(at::IntArrayRef sizes, at::IntArrayRef strides, int64_t from, int64_t& stride) {
  stride = 0;
  const int64_t nd = static_cast<int64_t>(sizes.size());
  for (int64_t d = from; d < nd; ++d)
    if (sizes[d] == 0) return true;  // no elements: any strides do
  bool first = true;
  int64_t prev_stride = 0, prev_size = 1;
  for (int64_t d = nd - 1; d >= from; --d) {
    if (sizes[d] == 1) continue;
    if (first) {
      stride = strides[d];
      first = false;
    } else if (strides[d] != prev_stride * prev_size) {
      return false;
    }
    prev_stride = strides[d];
    prev_size = sizes[d];
  }
  return true;
}

using Triple = std::array<int64_t, 3>;  // (sN, sC, sS)

// (sN, sC, sS) of an input-shaped tensor; false if d1..dk do not merge.
bool triple_of(const at::Tensor& t, Triple& out) {
  const int64_t d = t.dim();
  if (d == 1) {
    out = {0, t.stride(0), 0};
    return true;
  }
  int64_t ss = 0;
  const bool ok = d == 2 || merge_tail(t.sizes(), t.strides(), 2, ss);
  out = {t.stride(0), t.stride(1), ss};
  return ok;
}

// (tN, tS) of a per-sample tensor (target, grad_output) of the sample shape.
bool pair_of(const at::Tensor& t, int64_t input_dim, int64_t& tn, int64_t& ts) {
  tn = ts = 0;
  if (input_dim == 1) return true;  // one sample
  tn = t.stride(0);
  return input_dim == 2 || merge_tail(t.sizes(), t.strides(), 1, ts);
}

void check_class_target(const RowwiseSpec& spec, const at::Tensor& input, const at::Tensor& target) {
  const char* op = spec.op;
  const int64_t d = input.dim();
  if (d == 1) {
    TORCH_CHECK(target.dim() <= 1, op, ": 0D or 1D target tensor expected for input of shape ",
                shape_str(input.sizes()), ", multi-target not supported (got target of shape ",
                shape_str(target.sizes()), ")");
    TORCH_CHECK_VALUE(target.dim() == 0 || target.size(0) == 1, op,
                      ": For 1D input, 1D target must have size 1, but got target size: ", target.size(0));
  } else {
    const int64_t tb = target.dim() == 0 ? 0 : target.size(0);
    TORCH_CHECK_VALUE(tb == input.size(0) && target.dim() > 0, op, ": Expected input batch_size (", input.size(0),
                      ") to match target batch_size (", tb, "); input ", shape_str(input.sizes()), ", target ",
                      shape_str(target.sizes()));
    if (d == 2) {
      TORCH_CHECK(target.dim() == 1, op, ": 0D or 1D target tensor expected, multi-target not supported (input ",
                  shape_str(input.sizes()), ", target ", shape_str(target.sizes()), ")");
    } else {
      std::vector<int64_t> want{input.size(0)};
      for (int64_t i = 2; i < d; ++i) want.push_back(input.size(i));
      TORCH_CHECK(target.sizes().equals(want), op, ": Expected target size ", shape_str(want), ", got ",
                  shape_str(target.sizes()), " (input ", shape_str(input.sizes()), ")");
    }
  }
  TORCH_CHECK(target.scalar_type() == at::kLong || target.scalar_type() == at::kByte, op,
              ": expected target dtype to be Long or Byte, but got ", target.scalar_type());
}

}  // namespace

at::ScalarType rowwise_math_dtype(at::ScalarType dtype) {
  return (dtype == at::kHalf || dtype == at::kBFloat16) ? at::kFloat : dtype;
}

RowwiseProblem rowwise_prepare(const RowwiseSpec& spec, const at::Tensor& input_, const at::Tensor& target_,
                               const c10::optional<at::Tensor>& weight_opt, int64_t reduction,
                               int64_t ignore_index, bool want_grad_input, bool want_grad_target,
                               bool inplace) {
  const char* op = spec.op;
  RowwiseProblem p;
  p.op = op;
  RowwiseArgs& a = p.args;
  a.reduction = to_reduction(reduction, op);
  TORCH_CHECK_NOT_IMPLEMENTED(is_loss_dtype(input_.scalar_type()), op, ": not implemented for input dtype '",
                              input_.scalar_type(), "' (expected float16, bfloat16, float32 or float64)");
  a.ignore_index = ignore_index;
  p.input_dtype = input_.scalar_type();
  p.target_dtype = target_.scalar_type();

  at::Tensor input = input_, target = target_;
  at::Tensor weight = weight_opt.has_value() ? *weight_opt : at::Tensor();
  const bool prob = p.prob = spec.allow_prob && input.sizes().equals(target.sizes());
  const int64_t d = input.dim();

  if (prob) {
    TORCH_CHECK(at::isFloatingType(target.scalar_type()), op,
                ": Expected floating point type for target with class probabilities, got ", target.scalar_type());
    TORCH_CHECK(ignore_index < 0, op, ": ignore_index is not supported for floating point target (got ",
                ignore_index, ")");
    TORCH_CHECK_INDEX(d > 0, op, ": Dimension specified as 1 but the input has no dimensions (input ",
                      shape_str(input.sizes()), ")");
    TORCH_CHECK_NOT_IMPLEMENTED(is_loss_dtype(target.scalar_type()), op, ": not implemented for target dtype '",
                                target.scalar_type(), "'");
  } else if (!spec.target_set) {
    if (d == 0) {
      TORCH_CHECK_INDEX(!spec.allow_prob, op, ": Dimension out of range (the input ", shape_str(input.sizes()),
                        " has no class dimension)");
      TORCH_CHECK_VALUE(false, op, ": Expected 1 or more dimensions (got 0)");
    }
    check_class_target(spec, input, target);
  }
  const int64_t C = d == 1 ? input.size(0) : input.size(1);
  if (weight.defined()) {
    // torch's K-dim class-index kernels (inputs of 3+ dims) take any weight of C elements, e.g. (C, 1).
    TORCH_CHECK((weight.dim() == 1 || (d >= 3 && !prob)) && weight.numel() == C, op, ": weight tensor should be defined either for all ", C,
                " classes or no classes but got weight tensor of shape: ", shape_str(weight.sizes()));
    if (!prob) {
      TORCH_CHECK(weight.scalar_type() == input.scalar_type(), op, ": expected scalar type ", input.scalar_type(),
                  " but found ", weight.scalar_type(), " (weight)");
    } else {
      TORCH_CHECK_NOT_IMPLEMENTED(is_loss_dtype(weight.scalar_type()), op,
                                  ": not implemented for weight dtype '", weight.scalar_type(), "'");
    }
  }
  check_same_device(op, input, {&target, &weight});

  // dtype: the input's; probability targets promote input, target and weight (as torch's math does).
  at::ScalarType dtype = input.scalar_type();
  if (prob) {
    dtype = c10::promoteTypes(dtype, target.scalar_type());
    if (weight.defined()) dtype = c10::promoteTypes(dtype, weight.scalar_type());
    if (input.scalar_type() != dtype) input = input.to(dtype);
    if (target.scalar_type() != dtype) target = target.to(dtype);
  }
  if (weight.defined()) {
    if (weight.scalar_type() != dtype) weight = weight.to(dtype);
    weight = shaped(weight, {C}).contiguous();
  }
  a.dtype = dtype;

  // Geometry.
  a.C = C;
  a.N = d == 1 ? 1 : input.size(0);
  a.S = 1;
  for (int64_t i = 2; i < d; ++i) a.S *= input.size(i);
  p.sample_shape.assign(input.sizes().begin(), input.sizes().end());
  p.sample_shape.erase(p.sample_shape.begin() + (d == 1 ? 0 : 1));

  if (inplace) {
    TORCH_CHECK(input_.is_contiguous() && input.is_same(input_), op,
                ": the in-place gradient needs a contiguous input of the computation dtype (got strides ",
                shape_str(input_.strides()), ", dtype ", input_.scalar_type(), ")");
  }

  const bool need_layout = spec.need_layout || want_grad_input || (prob && want_grad_target) || inplace;
  // Layout: every (N, C, S) operand in the rows layout (sC == 1), or the spatial one (sS == 1), or a
  // transposed (N, C) matrix (sN == 1, run spatially as (1, C, N)); otherwise made contiguous.
  for (int attempt = 0; attempt < 2; ++attempt) {
    p.grad_input = inplace ? input : (want_grad_input ? fresh(new_buffer_like(input)) : at::Tensor());
    p.grad_target = (prob && want_grad_target) ? fresh(new_buffer_like(target)) : at::Tensor();
    const at::Tensor* ops[kRowOperands] = {&input, &p.grad_input, prob ? &target : nullptr, &p.grad_target};
    Triple tr[kRowOperands] = {};
    bool mergeable = true, rows = true, spatial = a.S > 1, trans = d == 2 && a.N > 1;
    for (int k = 0; k < kRowOperands; ++k) {
      if (!ops[k] || !ops[k]->defined()) continue;
      mergeable = triple_of(*ops[k], tr[k]) && mergeable;
      rows = rows && (C <= 1 || tr[k][1] == 1);
      spatial = spatial && tr[k][2] == 1;
      trans = trans && tr[k][0] == 1;
    }
    // No elements: nothing is read or written, any strides do (an empty expanded input stays strided).
    const bool ok = input.numel() == 0 || (mergeable && (!need_layout || rows || spatial || trans));
    if (!ok && attempt == 0) {
      input = input.contiguous();
      if (prob) target = target.contiguous();
      continue;
    }
    TORCH_INTERNAL_ASSERT(ok, op, ": could not lay out the input");
    p.transposed = need_layout && !spatial && !rows && trans;
    a.spatial = need_layout && (spatial || p.transposed);
    for (int k = 0; k < kRowOperands; ++k) {
      a.st[k][0] = tr[k][0];
      a.st[k][1] = tr[k][1];
      a.st[k][2] = tr[k][2];
      if (p.transposed) {  // (N, C) -> (1, C, N)
        a.st[k][2] = tr[k][0];
        a.st[k][0] = 0;
      }
    }
    break;
  }
  if (p.transposed) {
    a.S = a.N;
    a.N = 1;
  }

  // Class targets as (N, S); a target set as (N, C).
  if (spec.target_set) {
    a.tN = target.stride(0);
    a.tC = target.stride(1);
  } else if (!prob) {
    int64_t tn = 0, ts = 0;
    if (!pair_of(target, d, tn, ts)) {
      target = target.contiguous();
      pair_of(target, d, tn, ts);
    }
    a.tN = p.transposed ? 0 : tn;
    a.tS = p.transposed ? tn : ts;
    a.target_u8 = target.scalar_type() == at::kByte;
  }
  p.input = input;
  p.target = target;
  p.weight = weight;
  a.input = input.const_data_ptr();
  a.target = prob ? nullptr : target.const_data_ptr();
  a.other = prob ? target.const_data_ptr() : nullptr;
  a.weight = weight.defined() ? weight.const_data_ptr() : nullptr;
  a.grad_input = p.grad_input.defined() ? p.grad_input.data_ptr() : nullptr;
  a.grad_other = p.grad_target.defined() ? p.grad_target.data_ptr() : nullptr;
  return p;
}

at::Tensor rowwise_sample_buffer(const RowwiseProblem& p, at::ScalarType dtype) {
  return new_buffer(p.sample_shape, p.input.options().dtype(dtype));
}

at::Tensor rowwise_loss_buffer(const RowwiseProblem& p) {
  if (p.args.reduction == Reduction::None) return rowwise_sample_buffer(p, p.args.dtype);
  return new_buffer({}, p.input.options().dtype(p.args.dtype));
}

at::Tensor rowwise_set_grad_output(RowwiseProblem& p, const at::Tensor& grad_output) {
  const char* op = p.op;
  RowwiseArgs& a = p.args;
  TORCH_CHECK(grad_output.device() == p.input.device(), op, ": grad_output is on ", grad_output.device(),
              " but the input is on ", p.input.device());
  at::Tensor go = grad_output.scalar_type() == a.dtype ? grad_output : grad_output.to(a.dtype);
  if (a.reduction != Reduction::None) {
    TORCH_CHECK(go.dim() == 0, op, ": expected a 0-d grad_output for a reduced loss, but got shape ",
                shape_str(go.sizes()));
  } else {
    TORCH_CHECK(go.sizes().equals(p.sample_shape), op, ": expected grad_output of shape ", shape_str(p.sample_shape),
                ", but got ", shape_str(go.sizes()));
    const int64_t d = static_cast<int64_t>(p.sample_shape.size()) + 1;
    int64_t gn = 0, gs = 0;
    if (!pair_of(go, d, gn, gs)) {
      go = go.contiguous();
      pair_of(go, d, gn, gs);
    }
    a.gN = p.transposed ? 0 : gn;
    a.gS = p.transposed ? gn : gs;
  }
  a.grad_output = go.const_data_ptr();
  return go;
}

namespace {
std::vector<int64_t> saved_shape(const RowwiseProblem& p, int64_t count) {
  std::vector<int64_t> shape = p.sample_shape;
  shape.push_back(count);
  return shape;
}
}  // namespace

at::Tensor rowwise_saved_buffer(RowwiseProblem& p, int64_t count) {
  if (count == 0) return at::Tensor();
  at::Tensor t = new_buffer(saved_shape(p, count), p.input.options().dtype(rowwise_math_dtype(p.args.dtype)));
  p.args.saved = t.data_ptr();
  return t;
}

at::Tensor rowwise_use_saved(RowwiseProblem& p, const at::Tensor& saved, int64_t count) {
  const std::vector<int64_t> shape = saved_shape(p, count);
  const at::ScalarType dtype = rowwise_math_dtype(p.args.dtype);
  TORCH_CHECK(saved.sizes().equals(shape) && saved.scalar_type() == dtype && saved.device() == p.input.device(),
              p.op, ": expected the forward's saved statistics of shape ", shape_str(shape), " and dtype ", dtype,
              ", but got ", shape_str(saved.sizes()), " ", saved.scalar_type());
  at::Tensor t = saved.contiguous();
  p.args.saved = const_cast<void*>(t.const_data_ptr());
  return t;
}

bool rowwise_forward_grads(std::initializer_list<at::Tensor> operands) {
  return std::none_of(operands.begin(), operands.end(),
                      [](const at::Tensor& t) { return t.defined() && t.scalar_type() == at::kHalf; });
}

at::Tensor rowwise_finish_grad(const at::Tensor& grad, const at::Tensor& like, at::ScalarType dtype) {
  if (!grad.defined()) return not_computed(like);
  return grad.scalar_type() == dtype ? grad : grad.to(dtype);
}

at::Tensor rowwise_grad_like_input(const RowwiseProblem& p, const at::Tensor& input) {
  const at::Tensor g = rowwise_finish_grad(p.grad_input, input, p.input_dtype);
  return p.grad_input.defined() ? shaped(g, input.sizes()) : g;
}

at::Tensor rowwise_set_grad_output(RowwiseProblem& p, const at::Tensor& grad_output, at::IntArrayRef loss_shape) {
  if (p.args.reduction != Reduction::None) return rowwise_set_grad_output(p, grad_output);
  TORCH_CHECK(grad_output.sizes().equals(loss_shape), p.op, ": expected grad_output of shape ", shape_str(loss_shape),
              ", but got ", shape_str(grad_output.sizes()));
  return rowwise_set_grad_output(p, shaped(grad_output, p.sample_shape));
}

}  // namespace lossext
