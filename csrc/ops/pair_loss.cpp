// Host code of the (input, target[, weight]) losses: checks, dtype rules and the weighted mean
// (see lossext/pair_loss_host.h). Every pass is a pointwise driver call; no ATen math.
#include <lossext/pair_loss.h>
#include <lossext/pair_loss_host.h>

#include <c10/core/DefaultDtype.h>
#include <c10/core/ScalarType.h>

#include <cmath>

namespace lossext {
namespace {

struct Plan {
  Reduction reduction;
  std::vector<int64_t> shape;  // input and target broadcast
  bool weighted_mean;          // mean = sum(w f) / sum(w)
  at::ScalarType loss_dtype;
  int n_grads;                 // 3 with a weight, else 2
};

bool integral(const at::Tensor& t) { return at::isIntegralType(t.scalar_type(), /*includeBool=*/true); }
bool is_complex_t(const at::Tensor& t) { return t.defined() && at::isComplexType(t.scalar_type()); }

// torch's dtype rules for integer, bool and complex operands (see PairLossInfo).
void check_dtypes(const PairLossCall& c) {
  const char* op = c.info->op;
  for (const at::Tensor* t : {&c.input, &c.target})
    TORCH_CHECK_NOT_IMPLEMENTED(c.info->complex_stub || !is_complex_t(*t), op,
                                ": complex inputs are not supported (got ", t->scalar_type(), ")");
  TORCH_CHECK_NOT_IMPLEMENTED(!is_complex_t(c.weight), op, ": a complex weight is not supported (got ",
                              c.weight.defined() ? c.weight.scalar_type() : at::kFloat, ")");
  if (c.info->float_input) check_floating(op, "input", c.input);
  const bool ix = integral(c.input), it = integral(c.target);
  // With a floating weight torch's l1/mse composites compute `loss * weight` in the weight's dtype.
  const bool float_weight = c.weight.defined() && !integral(c.weight) && c.info->mean_over_weight_sum;
  if (ix && it && !float_weight) {
    TORCH_CHECK_NOT_IMPLEMENTED(!c.info->int_pair_not_implemented, op, ": not implemented for integer input ",
                                c.input.scalar_type(), " and target ", c.target.scalar_type());
    TORCH_CHECK(false, op, ": integer input ", c.input.scalar_type(), " and target ", c.target.scalar_type(),
                " are not supported (torch: the result type cannot be inferred or cast)");
  }
  TORCH_CHECK(!ix || it || c.info->int_input_ok, op, ": result type ", c.target.scalar_type(),
              " can't be cast to the desired output type ", c.input.scalar_type());
  // A weighted l1/mse is torch's composite, whose `input - target` rejects a bool target too.
  const bool bool_ok = c.info->bool_target_ok && !(c.weight.defined() && c.info->mean_over_weight_sum);
  TORCH_CHECK(bool_ok || c.target.scalar_type() != at::kBool, op,
              ": a bool target is not supported (torch: subtraction with a bool tensor is not supported)");
  if (!ix && !is_complex_t(c.input)) check_floating(op, "input", c.input);
  if (!it && !is_complex_t(c.target)) check_floating(op, "target", c.target);
}

Plan make_plan(const PairLossCall& c) {
  const char* op = c.info->op;
  Plan p;
  p.reduction = to_reduction(c.reduction, op);
  TORCH_CHECK(c.input.defined() && c.target.defined(), op, ": input and target must be tensors");
  check_dtypes(c);
  check_same_device(op, c.input, {&c.target, &c.weight});
  p.shape = broadcast_shape(op, {c.input, c.target}, {"input", "target"});
  TORCH_CHECK(!c.info->target_within_input || c.input.sizes().equals(p.shape), op, ": target of shape ",
              shape_str(c.target.sizes()), " would broadcast the input of shape ", shape_str(c.input.sizes()),
              " to ", shape_str(p.shape), "; the output must have the input's shape");
  TORCH_CHECK_VALUE(!c.weight.defined() || c.weight.sizes().equals(c.input.sizes()), op,
                    ": Weights and input must have the same size, but got weight of shape ",
                    shape_str(c.weight.sizes()), " and input of shape ", shape_str(c.input.sizes()));
  p.weighted_mean = c.weight.defined() && c.info->mean_over_weight_sum && p.reduction == Reduction::Mean;
  at::ScalarType dt = c.info->loss_in_input_dtype ? c.input.scalar_type()
                                                  : c10::promoteTypes(c.input.scalar_type(), c.target.scalar_type());
  if (at::isComplexType(dt)) dt = c10::toRealValueType(dt);  // complex l1: |x - t| is real
  // torch computes `loss * weight` (then `sum / sum(weight)` for l1/mse's mean): a 0-d weight (of a
  // 0-d input) does not promote a loss that has dimensions; the 0-d sums of the mean do promote.
  if (c.weight.defined() && (c.weight.dim() > 0 || p.shape.empty() || p.weighted_mean))
    dt = c10::promoteTypes(dt, c.weight.scalar_type());
  p.loss_dtype = at::isFloatingType(dt) ? dt : c10::typeMetaToScalarType(c10::get_default_dtype());
  p.n_grads = c.weight.defined() ? 3 : 2;
  return p;
}

int64_t numel_of(at::IntArrayRef shape) {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

// The driver call of the loss itself. `norm` and `loss` are the 0-d n and c operands (or undefined).
PointwiseCall loss_call(const PairLossCall& c, const Plan& p, Reduction red, const at::Tensor& norm,
                        const at::Tensor& loss, std::vector<bool> mask) {
  const bool cplx = is_complex_t(c.input) || is_complex_t(c.target);
  PointwiseCall call{.op = c.info->op,
                     .stub = cplx ? c.info->complex_stub : c.info->stub,
                     .inputs = {c.input, c.target, c.weight, norm, loss},
                     .n_grads = p.n_grads,
                     .reduction = red,
                     .grad_mask = std::move(mask),
                     .integral_ok = true,  // check_dtypes has applied torch's rules
                     .loss_dtype = p.loss_dtype,
                     .complex_ok = cplx};
  const int64_t nb = numel_of(p.shape);
  const PairMode mode = norm.defined() ? PairMode::kWeightedMean
                        : c.weight.defined() ? PairMode::kWeighted : PairMode::kUnweighted;
  call.params.resize(kPairBaseParams);
  call.params[kPairParamMode] = static_cast<double>(mode);
  // k = numel(w) / numel(broadcast): see lossext/pair_loss.h. Only with the final loss as operand c.
  call.params[kPairParamK] = loss.defined() && nb > 0 ? double(c.input.numel()) / double(nb) : 0.0;
  call.params.insert(call.params.end(), c.params.begin(), c.params.end());
  // torch's weighted mean of no elements is 0 / sum(w): NaN when the weight is empty too (its sum is
  // then 0 for sure; with a non-empty weight and an empty target we give 0, torch 0 / sum(w)).
  if (norm.defined() && nb == 0 && c.weight.numel() == 0) call.scale_override = std::nan("");
  return call;
}

// The weighted mean's operands: n = sum(w) (0-d, w's dtype, as torch's sum(weight)), and the final
// loss c when the weight's gradient needs it (one more pass, without gradients).
struct WeightedMean {
  at::Tensor norm, loss;
};

WeightedMean weighted_mean(const PairLossCall& c, const Plan& p, bool need_loss) {
  WeightedMean wm;
  wm.norm = sum_all(c.info->op, c.weight);
  if (need_loss) wm.loss = pointwise_forward(loss_call(c, p, Reduction::Sum, wm.norm, at::Tensor(), {}))[0];
  return wm;
}

std::vector<bool> mask_of(const PairLossCall& c, const Plan& p) {
  std::vector<bool> m(c.grad_mask.begin(), c.grad_mask.end());
  m.resize(p.n_grads, false);
  return m;
}

// grads for the op's schema: K = grad_mask.size() outputs, the weight's empty when there is none.
void append_grads(const PairLossCall& c, std::vector<at::Tensor>& out, const std::vector<at::Tensor>& grads) {
  for (size_t k = 0; k < c.grad_mask.size(); ++k)
    out.push_back(k < grads.size() ? grads[k] : not_computed(c.input));
}

}  // namespace

std::vector<at::Tensor> run_forward(const PairLossCall& c) {
  const Plan p = make_plan(c);
  const auto mask = mask_of(c, p);
  std::vector<at::Tensor> r;
  if (p.weighted_mean) {
    const WeightedMean wm = weighted_mean(c, p, mask[2]);
    r = pointwise_forward(loss_call(c, p, Reduction::Sum, wm.norm, wm.loss, mask));
  } else {
    r = pointwise_forward(loss_call(c, p, p.reduction, at::Tensor(), at::Tensor(), mask));
  }
  std::vector<at::Tensor> out{r[0].scalar_type() == p.loss_dtype ? r[0] : r[0].to(p.loss_dtype)};
  append_grads(c, out, {r.begin() + 1, r.end()});
  return out;
}

std::vector<at::Tensor> run_backward(const PairLossCall& c, const at::Tensor& grad_output) {
  const Plan p = make_plan(c);
  const auto mask = mask_of(c, p);
  std::vector<at::Tensor> g;
  if (p.weighted_mean) {
    const WeightedMean wm = weighted_mean(c, p, mask[2]);
    g = pointwise_backward(loss_call(c, p, Reduction::Sum, wm.norm, wm.loss, mask), grad_output);
  } else {
    g = pointwise_backward(loss_call(c, p, p.reduction, at::Tensor(), at::Tensor(), mask), grad_output);
  }
  std::vector<at::Tensor> out;
  append_grads(c, out, g);
  return out;
}

}  // namespace lossext
