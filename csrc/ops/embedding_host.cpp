// Host side of the embedding losses (see lossext/embedding_host.h).
#include <lossext/embedding_host.h>
#include <lossext/fresh.h>
#include <lossext/host.h>
#include <lossext/rowwise_host.h>

#include <ATen/ExpandUtils.h>
#include <ATen/native/TypeProperties.h>
#include <ATen/ops/empty.h>
#include <c10/core/DefaultDtype.h>
#include <c10/core/ScalarType.h>

#include <string>

namespace lossext {
namespace {

// The stride of the batch dims [0, nd) of t (size-1 dims skipped) merged into one; false if they
// do not merge.
bool batch_stride(const at::Tensor& t, int64_t nd, int64_t& stride) {
  stride = 0;
  bool first = true;
  int64_t prev_stride = 0, prev_size = 1;
  for (int64_t d = nd - 1; d >= 0; --d) {
    if (t.size(d) == 0) return true;  // no rows: any stride does
    if (t.size(d) == 1) continue;
    if (first) {
      stride = t.stride(d);
      first = false;
    } else if (t.stride(d) != prev_stride * prev_size) {
      return false;
    }
    prev_stride = t.stride(d);
    prev_size = t.size(d);
  }
  return true;
}

}  // namespace

EmbeddingProblem embedding_prepare(const char* op, at::TensorList operands, const at::Tensor& value,
                                   const std::vector<const char*>& names, int64_t reduction,
                                   at::ArrayRef<bool> want_grads, bool float_each) {
  EmbeddingProblem p;
  p.op = op;
  p.count = static_cast<int>(operands.size());
  TORCH_INTERNAL_ASSERT(p.count >= 2 && p.count <= kEmbedMaxOperands && want_grads.size() == operands.size());
  RowwiseArgs& a = p.args;
  a.reduction = to_reduction(reduction, op);
  a.empty_row_loss = true;  // a sample of no features still has a loss (1 - cos(0) = 1; the margin)

  // dtype: torch's result type of the operands (integers and bools: the default float dtype, as
  // torch's composite sums and divisions give); complex and other types are not implemented.
  std::vector<at::Tensor> views;
  for (int k = 0; k < p.count; ++k) {
    const at::Tensor& t = operands[k];
    TORCH_CHECK_NOT_IMPLEMENTED(is_loss_dtype(t.scalar_type()) || at::isIntegralType(t.scalar_type(), true), op,
                                ": not implemented for ", names[k], " dtype '", t.scalar_type(), "'");
    p.given[k] = t;
    views.push_back(t.dim() == 0 ? t.reshape({1}) : t);
  }
  const at::ScalarType dflt = c10::typeMetaToScalarType(c10::get_default_dtype());
  at::ScalarType dtype = at::native::result_type(operands);
  if (!at::isFloatingType(dtype)) dtype = dflt;
  if (float_each)
    for (const auto& t : operands) dtype = c10::promoteTypes(dtype, at::isFloatingType(t.scalar_type()) ? dtype : dflt);
  a.dtype = dtype;
  std::vector<at::Tensor> all = views;
  std::vector<std::string> nm(names.begin(), names.begin() + p.count);
  if (value.defined()) {  // a per-sample target broadcasts against the batch dims only
    all.push_back(value.unsqueeze(-1));
    nm.push_back(names.at(p.count));
  }
  std::vector<const at::Tensor*> others;
  for (const auto& t : all) others.push_back(&t);
  check_same_device(op, operands[0], {others.size() > 1 ? others[1] : nullptr, others.size() > 2 ? others[2] : nullptr,
                                      others.size() > 3 ? others[3] : nullptr});
  p.shape = broadcast_shape(op, all, nm);
  const int64_t nd = static_cast<int64_t>(p.shape.size());
  const int64_t D = p.shape.back();
  p.sample_shape.assign(p.shape.begin(), p.shape.end() - 1);
  if (operands[0].dim() == 0) p.sample_shape.clear();  // 0-d operands: one sample, a 0-d loss
  int64_t N = 1;
  for (int64_t d = 0; d + 1 < nd; ++d) N *= p.shape[d];
  a.N = N;
  a.C = D;
  a.S = 1;
  a.spatial = false;

  const void** ptr[kEmbedMaxOperands] = {&a.input, &a.other, &a.third};
  void** gptr[kEmbedMaxOperands] = {&a.grad_input, &a.grad_other, &a.grad_third};
  const int slot[kEmbedMaxOperands] = {kRowInput, kRowOther, kRowThird};
  const int gslot[kEmbedMaxOperands] = {kRowGradInput, kRowGradOther, kRowGradThird};
  for (int k = 0; k < p.count; ++k) {
    at::Tensor t = views[k].scalar_type() == dtype ? views[k] : views[k].to(dtype);
    t = t.expand(p.shape);
    int64_t sn = 0;
    if ((D > 1 && t.stride(-1) != 1) || !batch_stride(t, nd - 1, sn)) {
      t = t.contiguous();
      batch_stride(t, nd - 1, sn);
    }
    p.rows[k] = t;
    *ptr[k] = t.const_data_ptr();
    a.st[slot[k]][0] = sn;
    a.st[slot[k]][1] = 1;
    if (want_grads[k]) {
      p.grads[k] = fresh(at::empty(p.shape, t.options()));
      *gptr[k] = p.grads[k].data_ptr();
      a.st[gslot[k]][0] = D;
      a.st[gslot[k]][1] = 1;
    }
  }
  if (value.defined()) {
    // Compared exactly as torch compares the target: float64 stays float64, every other dtype is
    // exact in float32 where it matters (a value converts to +-1 only if it is +-1).
    const at::ScalarType vt = value.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    TORCH_CHECK(!at::isComplexType(value.scalar_type()), op, ": expected a real ", names.at(p.count), ", but got ",
                value.scalar_type());
    at::Tensor v = (value.scalar_type() == vt ? value : value.to(vt)).expand(p.sample_shape);
    int64_t vn = 0;
    if (!batch_stride(v, v.dim(), vn)) {
      v = v.contiguous();
      batch_stride(v, v.dim(), vn);
    }
    p.value = v;
    a.value = v.const_data_ptr();
    a.value_f64 = vt == at::kDouble;
    a.vN = vn;
  }
  return p;
}

at::Tensor embedding_loss_buffer(EmbeddingProblem& p) {
  at::Tensor t = p.args.reduction == Reduction::None
                     ? at::empty(p.sample_shape, p.rows[0].options())
                     : at::empty({}, p.rows[0].options());
  p.args.loss = t.data_ptr();
  return t;
}

namespace {
std::vector<int64_t> saved_shape(const EmbeddingProblem& p, int64_t count) {
  std::vector<int64_t> s = p.sample_shape;
  s.push_back(count);
  return s;
}
}  // namespace

at::Tensor embedding_saved_buffer(EmbeddingProblem& p, int64_t count) {
  at::Tensor t = at::empty(saved_shape(p, count), p.rows[0].options().dtype(rowwise_math_dtype(p.args.dtype)));
  p.args.saved = t.data_ptr();
  return t;
}

at::Tensor embedding_use_saved(EmbeddingProblem& p, const at::Tensor& saved, int64_t count) {
  const std::vector<int64_t> shape = saved_shape(p, count);
  const at::ScalarType dt = rowwise_math_dtype(p.args.dtype);
  TORCH_CHECK(saved.sizes().equals(shape) && saved.scalar_type() == dt && saved.device() == p.rows[0].device(),
              p.op, ": expected the forward's saved statistics of shape ", shape_str(shape), " and dtype ", dt,
              ", but got ", shape_str(saved.sizes()), " ", saved.scalar_type());
  at::Tensor t = saved.contiguous();
  p.args.saved = const_cast<void*>(t.const_data_ptr());
  return t;
}

at::Tensor embedding_set_grad_output(EmbeddingProblem& p, const at::Tensor& grad_output) {
  RowwiseArgs& a = p.args;
  TORCH_CHECK(grad_output.device() == p.rows[0].device(), p.op, ": grad_output is on ", grad_output.device(),
              " but the inputs are on ", p.rows[0].device());
  at::Tensor go = grad_output.scalar_type() == a.dtype ? grad_output : grad_output.to(a.dtype);
  if (a.reduction != Reduction::None) {
    TORCH_CHECK(go.dim() == 0, p.op, ": expected a 0-d grad_output for a reduced loss, but got shape ",
                shape_str(go.sizes()));
  } else {
    TORCH_CHECK(go.sizes().equals(p.sample_shape), p.op, ": expected grad_output of shape ",
                shape_str(p.sample_shape), ", but got ", shape_str(go.sizes()));
    int64_t gn = 0;
    if (!batch_stride(go, go.dim(), gn)) {
      go = go.contiguous();
      batch_stride(go, go.dim(), gn);
    }
    a.gN = gn;
    a.gS = 0;
  }
  a.grad_output = go.const_data_ptr();
  return go;
}

double embedding_inv_rep(const EmbeddingProblem& p, std::initializer_list<int> ks) {
  const int64_t D = p.args.C;
  for (int k : ks) {
    const at::Tensor& t = p.given[k];
    if (D <= 1 || (t.dim() > 0 && t.size(-1) != 1)) return 1.0;
  }
  return 1.0 / static_cast<double>(D);
}

at::Tensor embedding_grad(const EmbeddingProblem& p, int k) {
  const at::Tensor& like = p.given[k];
  if (!p.grads[k].defined()) return not_computed(like);
  at::Tensor g = p.grads[k];
  const std::vector<int64_t> own = like.dim() == 0 ? std::vector<int64_t>{} : like.sizes().vec();
  if (!g.sizes().equals(own)) g = like.dim() == 0 ? g.reshape({}) : sum_to_size(p.op, g, own);
  return g.scalar_type() == like.scalar_type() ? g : g.to(like.scalar_type());
}

}  // namespace lossext
