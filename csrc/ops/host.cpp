// Host-side helpers and the generic pointwise runner (see lossext/host.h).
#include <lossext/fresh.h>
#include <lossext/host.h>

#include <ATen/EmptyTensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/view_as_complex.h>
#include <ATen/ops/view_as_real.h>
#include <ATen/native/TypeProperties.h>
#include <c10/core/DefaultDtype.h>
#include <c10/core/ScalarType.h>
#include <c10/core/DeviceGuard.h>

#include <algorithm>
#include <numeric>
#include <sstream>

namespace lossext {

std::string shape_str(at::IntArrayRef sizes) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < sizes.size(); ++i) os << (i ? ", " : "") << sizes[i];
  os << "]";
  return os.str();
}

bool is_loss_dtype(at::ScalarType st) {
  return st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16;
}

void check_broadcasts_to(const char* op, const char* name, const at::Tensor& t, at::IntArrayRef sizes) {
  bool ok = t.dim() <= static_cast<int64_t>(sizes.size());
  for (int64_t j = 1; ok && j <= t.dim(); ++j) {
    const int64_t s = t.size(-j);
    ok = s == 1 || s == sizes[sizes.size() - j];
  }
  TORCH_CHECK(ok, op, ": the size of ", name, " ", shape_str(t.sizes()), " does not broadcast to the input size ",
              shape_str(sizes));
}

void check_floating(const char* op, const char* name, const at::Tensor& t) {
  const auto st = t.scalar_type();
  // torch's kernels have no integer or complex instance for the input ("not implemented for
  // 'Long'"): NotImplementedError; other operands fail its dtype checks (RuntimeError).
  TORCH_CHECK_NOT_IMPLEMENTED(is_loss_dtype(st) || std::string(name) != "input", op,
                              ": not implemented for input dtype ", st,
                              "; expected a floating dtype (float16, bfloat16, float32 or float64)");
  TORCH_CHECK(is_loss_dtype(st), op,
              ": expected ", name, " to have a floating dtype (float16, bfloat16, float32 or float64), but got ",
              st);
}

void check_same_device(const char* op, const at::Tensor& ref, std::initializer_list<const at::Tensor*> others) {
  for (const at::Tensor* t : others) {
    if (t == nullptr || !t->defined()) continue;
    TORCH_CHECK(t->device() == ref.device(), op, ": expected all tensors to be on the same device, but found ",
                ref.device(), " and ", t->device());
  }
}

at::Tensor not_computed(const at::Tensor& like) { return new_buffer({0}, like.options()); }

at::Tensor new_buffer(at::IntArrayRef sizes, const at::TensorOptions& opts) {
  if (opts.device().is_cpu() && opts.layout() == at::kStrided) return at::detail::empty_cpu(sizes, opts);
  return at::empty(sizes, opts);
}

at::Tensor new_buffer_like(const at::Tensor& t, const at::TensorOptions& opts) {
  // (A non-contiguous t: empty_like keeps its strides, which the drivers' layouts may rely on.)
  if (t.is_contiguous() && !t.is_sparse()) return new_buffer(t.sizes(), opts);
  return at::empty_like(t, opts);
}

std::vector<int64_t> broadcast_shape(const char* op, at::TensorList tensors, const std::vector<std::string>& names) {
  size_t nd = 0;
  for (const auto& t : tensors)
    if (t.defined()) nd = std::max<size_t>(nd, t.dim());
  std::vector<int64_t> shape(nd, 1);
  std::vector<int> owner(nd, -1);
  for (size_t k = 0; k < tensors.size(); ++k) {
    const auto& t = tensors[k];
    if (!t.defined()) continue;
    const int64_t off = int64_t(nd) - t.dim();
    for (int64_t j = 0; j < t.dim(); ++j) {
      const int64_t s = t.size(j);
      int64_t& out = shape[off + j];
      if (s == out || s == 1) continue;
      TORCH_CHECK(out == 1, op, ": the size of ", names[owner[off + j]], " ", shape_str(tensors[owner[off + j]].sizes()),
                  " does not broadcast with the size of ", names[k], " ", shape_str(t.sizes()),
                  " (", out, " vs ", s, " at dimension ", off + j, ")");
      out = s;
      owner[off + j] = static_cast<int>(k);
    }
    for (int64_t j = 0; j < t.dim(); ++j)
      if (owner[off + j] < 0) owner[off + j] = static_cast<int>(k);
  }
  return shape;
}

namespace {

// Strides of `t` viewed as broadcast to `shape` (0 along broadcast dimensions).
std::vector<int64_t> expanded_strides(const at::Tensor& t, const std::vector<int64_t>& shape) {
  const int64_t nd = shape.size(), off = nd - t.dim();
  std::vector<int64_t> st(nd, 0);
  for (int64_t i = off; i < nd; ++i) st[i] = (t.size(i - off) == 1 && shape[i] != 1) ? 0 : t.stride(i - off);
  return st;
}

// Fills sizes/strides of `a` from the broadcast shape and every operand's strides: dimensions
// are ordered by the first operand's strides (so channels-last inputs stay unit-stride inside),
// size-1 dimensions dropped, and neighbours that are contiguous in every operand merged.
// keep_inner (kForwardRows): the last dimension stays innermost and separate, whatever its size.
void fill_geometry(PointwiseArgs& a, const std::vector<int64_t>& shape,
                   const std::vector<std::vector<int64_t>>& in_st, const std::vector<std::vector<int64_t>>& out_st,
                   bool keep_inner = false) {
  const int64_t nd = shape.size() - (keep_inner ? 1 : 0);
  std::vector<int64_t> perm(nd);
  std::iota(perm.begin(), perm.end(), 0);
  if (!in_st.empty()) {
    const auto& s0 = in_st[0];
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t x, int64_t y) {
      if (s0[x] == 0 || s0[y] == 0) return false;  // leave broadcast dimensions where they are
      return s0[x] > s0[y];
    });
  }
  std::vector<int64_t> sizes;
  std::vector<std::vector<int64_t>> is(in_st.size()), os(out_st.size());
  for (int64_t p = 0; p < nd; ++p) {
    const int64_t d = perm[p];
    if (shape[d] == 1) continue;
    if (!sizes.empty()) {
      bool merge = true;
      for (size_t k = 0; k < in_st.size() && merge; ++k) merge = is[k].back() == in_st[k][d] * shape[d];
      for (size_t k = 0; k < out_st.size() && merge; ++k) merge = os[k].back() == out_st[k][d] * shape[d];
      if (merge) {
        sizes.back() *= shape[d];
        for (size_t k = 0; k < in_st.size(); ++k) is[k].back() = in_st[k][d];
        for (size_t k = 0; k < out_st.size(); ++k) os[k].back() = out_st[k][d];
        continue;
      }
    }
    sizes.push_back(shape[d]);
    for (size_t k = 0; k < in_st.size(); ++k) is[k].push_back(in_st[k][d]);
    for (size_t k = 0; k < out_st.size(); ++k) os[k].push_back(out_st[k][d]);
  }
  if (keep_inner) {
    sizes.push_back(shape[nd]);
    for (size_t k = 0; k < in_st.size(); ++k) is[k].push_back(in_st[k][nd]);
    for (size_t k = 0; k < out_st.size(); ++k) os[k].push_back(out_st[k][nd]);
  }
  if (sizes.empty()) {  // a single element
    sizes.push_back(1);
    for (auto& s : is) s.push_back(0);
    for (auto& s : os) s.push_back(1);
  }
  TORCH_CHECK(sizes.size() <= size_t(kPwMaxDims), "lossext: more than ", kPwMaxDims,
              " non-mergeable dimensions are not supported");
  a.ndim = static_cast<int>(sizes.size());
  bool contiguous = a.ndim == 1 && !keep_inner;
  for (int d = 0; d < a.ndim; ++d) a.sizes[d] = sizes[d];
  for (size_t k = 0; k < in_st.size(); ++k) {
    for (int d = 0; d < a.ndim; ++d) a.in_strides[k][d] = is[k][d];
    if (a.in[k]) contiguous = contiguous && (is[k][0] == 1 || is[k][0] == 0);
  }
  for (size_t k = 0; k < out_st.size(); ++k) {
    for (int d = 0; d < a.ndim; ++d) a.out_strides[k][d] = os[k][d];
    if (a.out[k]) contiguous = contiguous && os[k][0] == 1;
  }
  a.contiguous = contiguous;
}

struct Prepared {
  std::vector<at::Tensor> in;  // as given (each in its own dtype: the drivers convert), undefined where absent
  std::vector<int64_t> shape;
  at::ScalarType dtype;         // the computation's
  at::ScalarType result_dtype;  // torch's result type: the loss's
  int64_t numel;
};

Prepared prepare(const PointwiseCall& call) {
  Prepared p;
  std::vector<std::string> names;
  const at::Tensor* first = nullptr;
  for (size_t k = 0; k < call.inputs.size(); ++k) {
    names.push_back(k == 0 ? "input" : k == 1 ? "target" : "operand " + std::to_string(k));
    const auto& t = call.inputs[k];
    if (!t.defined()) continue;
    if (!first) first = &t;
    if (!(call.integral_ok && at::isIntegralType(t.scalar_type(), /*includeBool=*/true)) &&
        !(call.complex_ok && at::isComplexType(t.scalar_type())))
      check_floating(call.op, names.back().c_str(), t);
    TORCH_CHECK(t.device() == first->device(), call.op, ": expected all tensors to be on the same device, but found ",
                first->device(), " and ", t.device());
  }
  TORCH_CHECK(first != nullptr, call.op, ": no input tensor");
  p.shape = broadcast_shape(call.op, call.inputs, names);
  std::vector<at::Tensor> defined;
  for (size_t k = 0; k < call.inputs.size(); ++k)
    if (call.inputs[k].defined() && !(k < call.internal.size() && call.internal[k])) defined.push_back(call.inputs[k]);
  p.dtype = at::native::result_type(defined);
  if (call.complex_ok && at::isComplexType(p.dtype)) p.dtype = c10::toRealValueType(p.dtype);  // a real loss
  if (!at::isFloatingType(p.dtype)) p.dtype = c10::typeMetaToScalarType(c10::get_default_dtype());
  p.result_dtype = p.dtype;
  // A loss dtype wider than the result type (the pair losses' promoted dtype, a 0-d float32 target
  // beside a float16 input): computed in it, so the sum does not overflow the narrower one.
  if (call.loss_dtype && at::isFloatingType(*call.loss_dtype)) p.dtype = c10::promoteTypes(p.dtype, *call.loss_dtype);
  // A 0-d operand wider than the result type (float64 beside float16) whose gradient is wanted:
  // torch returns that gradient at the operand's precision, so compute in the wider dtype (the
  // loss is rounded to the result type once, at the end).
  for (int k = 0; k < call.n_grads && k < int(call.grad_mask.size()); ++k) {
    const auto& t = call.inputs[k];
    if (call.grad_mask[k] && t.defined() && at::isFloatingType(t.scalar_type()))
      p.dtype = c10::promoteTypes(p.dtype, t.scalar_type());
    if (call.complex_ok && call.grad_mask[k] && t.defined() && at::isComplexType(t.scalar_type()))
      p.dtype = c10::promoteTypes(p.dtype, c10::toRealValueType(t.scalar_type()));
  }
  p.numel = 1;
  for (auto s : p.shape) p.numel *= s;
  p.in = call.inputs;
  return p;
}

double reduce_scale(const PointwiseCall& call, int64_t numel) {
  if (call.scale_override) return *call.scale_override;
  if (call.reduction == Reduction::Mean) return 1.0 / static_cast<double>(numel);  // inf for empty: NaN loss
  return 1.0;
}

bool same_shape(const at::Tensor& t, const std::vector<int64_t>& shape) {
  return t.sizes().equals(at::IntArrayRef(shape));
}

// Runs the stub with inputs `in` (+ optional grad_output last) and outputs `outs`.
void run(const PointwiseCall& call, const Prepared& p, PwMode mode, const std::vector<at::Tensor>& in,
         const std::vector<at::Tensor>& outs, void* loss, double scale) {
  PointwiseArgs a;
  a.mode = mode;
  a.dtype = p.dtype;
  a.numel = p.numel;
  a.nin = static_cast<int>(in.size());
  a.loss = loss;
  a.scale = scale;
  TORCH_CHECK(in.size() <= size_t(kPwMaxOperands) && outs.size() <= size_t(kPwMaxOperands) &&
                  call.params.size() <= size_t(kPwMaxParams),
              call.op, ": too many operands");
  for (size_t k = 0; k < call.params.size(); ++k) a.params[k] = call.params[k];
  std::vector<std::vector<int64_t>> in_st, out_st;
  for (size_t k = 0; k < in.size(); ++k) {
    a.in[k] = in[k].defined() ? in[k].const_data_ptr() : nullptr;
    if (in[k].defined()) a.in_dtype[k] = in[k].scalar_type();
    in_st.push_back(in[k].defined() ? expanded_strides(in[k], p.shape) : std::vector<int64_t>(p.shape.size(), 0));
  }
  for (size_t k = 0; k < outs.size(); ++k) {
    a.out[k] = outs[k].defined() ? outs[k].data_ptr() : nullptr;
    if (outs[k].defined()) a.out_dtype[k] = outs[k].scalar_type();
    out_st.push_back(outs[k].defined() ? expanded_strides(outs[k], p.shape) : std::vector<int64_t>(p.shape.size(), 0));
  }
  fill_geometry(a, p.shape, in_st, out_st, mode == PwMode::kForwardRows);
  const c10::DeviceType dev = in[0].defined() ? in[0].device().type() : c10::DeviceType::CPU;
  (*call.stub)(dev)(a);
}

// Allocates the gradient buffer for operand k: like the operand (its dtype: the driver rounds once)
// when it has the full shape, else full-size in the math dtype (float for half types), summed down
// in it and rounded to the operand's dtype once afterwards (a per-element rounding before the sum
// would overflow where the sum does not).
// A complex operand's gradient is complex (of the accumulation type's complex type when summed down).
at::Tensor grad_buffer(const Prepared& p, int k) {
  const auto& t = p.in[k];
  const bool cplx = at::isComplexType(t.scalar_type());
  const at::ScalarType full = (at::isFloatingType(t.scalar_type()) || cplx) ? t.scalar_type() : p.dtype;
  at::ScalarType acc = p.dtype == at::kDouble ? at::kDouble : at::kFloat;
  if (cplx) acc = c10::toComplexType(acc);
  return fresh(same_shape(t, p.shape) ? new_buffer_like(t, t.options().dtype(full))
                                      : new_buffer(p.shape, t.options().dtype(acc)));
}

// Sums broadcast gradients down and restores each operand's dtype.
std::vector<at::Tensor> finish_grads(const PointwiseCall& call, const Prepared& p, std::vector<at::Tensor> grads) {
  for (size_t k = 0; k < grads.size(); ++k) {
    if (!grads[k].defined()) {  // an absent operand (gaussian_nll_loss's float var) gets input's
      grads[k] = not_computed(call.inputs[k].defined() ? call.inputs[k] : call.inputs[0]);
      continue;
    }
    if (!same_shape(p.in[k], p.shape) && at::isComplexType(grads[k].scalar_type())) {
      // Complex: summed down as its (re, im) pairs, a trailing dimension of 2 that is kept.
      std::vector<int64_t> sizes(call.inputs[k].sizes().begin(), call.inputs[k].sizes().end());
      sizes.push_back(2);
      grads[k] = at::view_as_complex(sum_to_size(call.op, at::view_as_real(grads[k]), sizes));
    } else if (!same_shape(p.in[k], p.shape)) {
      grads[k] = sum_to_size(call.op, grads[k], call.inputs[k].sizes());
    }
    if (grads[k].scalar_type() != call.inputs[k].scalar_type()) grads[k] = grads[k].to(call.inputs[k].scalar_type());
  }
  return grads;
}

bool any_half(const std::vector<at::Tensor>& ts) {
  return std::any_of(ts.begin(), ts.end(), [](const at::Tensor& t) { return t.defined() && t.scalar_type() == at::kHalf; });
}

}  // namespace

std::vector<at::Tensor> pointwise_forward(const PointwiseCall& call) {
  Prepared p = prepare(call);
  c10::OptionalDeviceGuard guard(p.in[0].device());
  const bool reduce = call.reduction != Reduction::None;
  at::Tensor loss;
  std::vector<at::Tensor> grads(call.n_grads);
  if (!reduce && call.row_sum) {
    TORCH_CHECK(!p.shape.empty(), call.op, ": row sums need at least one dimension");
    loss = new_buffer(at::IntArrayRef(p.shape).slice(0, p.shape.size() - 1), p.in[0].options().dtype(p.dtype));
  } else if (!reduce) {
    const auto opts = p.in[0].options().dtype(p.dtype);
    loss = fresh(same_shape(p.in[0], p.shape) ? new_buffer_like(p.in[0], opts) : new_buffer(p.shape, opts));
  } else {
    loss = new_buffer({}, p.in[0].options().dtype(p.dtype));
    // A float16 gradient written here would be rounded (scaled by 1/N) before grad_output multiplies
    // it: under loss scaling it overflows or underflows where torch's does not. So with a float16
    // operand the forward writes none, and the backward computes grad_output * scale * g in float
    // and rounds once (the fakes: lossext/_registry.py _forward_writes_grads; the row-wise ops:
    // rowwise_forward_grads).
    if (!any_half(call.inputs))
      for (int k = 0; k < call.n_grads; ++k)
        if (k < int(call.grad_mask.size()) && call.grad_mask[k] && p.in[k].defined()) grads[k] = grad_buffer(p, k);
  }
  // Row sums write through `loss` viewed with a trailing size-1 dimension (stride 0 once broadcast).
  const bool rows = !reduce && call.row_sum;
  std::vector<at::Tensor> outs = reduce ? grads : std::vector<at::Tensor>{rows ? loss.unsqueeze(-1) : loss};
  const PwMode mode = reduce ? PwMode::kForwardReduce : (rows ? PwMode::kForwardRows : PwMode::kForwardNone);
  run(call, p, mode, p.in, outs, reduce ? loss.data_ptr() : nullptr, reduce_scale(call, p.numel));
  const at::ScalarType loss_dtype = call.loss_dtype.value_or(p.result_dtype);
  if (loss.scalar_type() != loss_dtype) loss = loss.to(loss_dtype);
  std::vector<at::Tensor> result{loss};
  for (auto& g : finish_grads(call, p, grads)) result.push_back(g);
  return result;
}

std::vector<at::Tensor> pointwise_backward(const PointwiseCall& call, const at::Tensor& grad_output) {
  Prepared p = prepare(call);
  c10::OptionalDeviceGuard guard(p.in[0].device());
  const bool reduce = call.reduction != Reduction::None;
  const bool rows = !reduce && call.row_sum;
  if (reduce) {
    TORCH_CHECK(grad_output.dim() == 0, call.op, ": expected a 0-d grad_output for reduction '",
                call.reduction == Reduction::Sum ? "sum" : "mean", "', but got shape ", shape_str(grad_output.sizes()));
  } else {
    TORCH_CHECK(!rows || !p.shape.empty(), call.op, ": row sums need at least one dimension");
    const at::IntArrayRef want = rows ? at::IntArrayRef(p.shape).slice(0, p.shape.size() - 1) : p.shape;
    TORCH_CHECK(grad_output.sizes().equals(want), call.op, ": expected grad_output of shape ", shape_str(want),
                ", but got ", shape_str(grad_output.sizes()));
  }
  TORCH_CHECK(grad_output.device() == p.in[0].device(), call.op, ": grad_output is on ", grad_output.device(),
              " but the inputs are on ", p.in[0].device());
  std::vector<at::Tensor> in = p.in;
  // Row sums: d loss_r / d x_rc = grad_output_r * scale * g_rc, the elementwise backward with
  // grad_output broadcast along the last dimension (a stride-0 view).
  const at::Tensor& go = grad_output;  // read in its own dtype by the driver
  in.push_back(rows ? go.unsqueeze(-1).expand(p.shape) : go);
  std::vector<at::Tensor> grads(call.n_grads);
  for (int k = 0; k < call.n_grads; ++k)
    if (k < int(call.grad_mask.size()) && call.grad_mask[k] && p.in[k].defined()) grads[k] = grad_buffer(p, k);
  run(call, p, PwMode::kBackwardNone, in, grads, nullptr,
      (reduce || call.scale_override) ? reduce_scale(call, p.numel) : 1.0);
  return finish_grads(call, p, grads);
}

}  // namespace lossext
