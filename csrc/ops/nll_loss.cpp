// nll_loss host functions (CPU and CUDA share them; the stub picks the kernels). Argument rules,
// geometry and buffers are the row-wise ones shared with cross_entropy (lossext/rowwise_host.h).
#include <lossext/autograd.h>
#include <lossext/host.h>
#include <lossext/ops.h>
#include <lossext/rowwise_host.h>
#include <losses/nll_loss.h>

#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::nll_loss_stub, lossext::RowwiseFn);

namespace lossext::ops {
namespace {
constexpr RowwiseSpec kSpec{"nll_loss", /*allow_prob=*/false, /*need_layout=*/false};

void run(const RowwiseProblem& p) {
  c10::OptionalDeviceGuard guard(p.input.device());
  nll_loss_stub(p.input.device().type())(p.args);
}
}  // namespace

std::tuple<Tensor, Tensor> nll_loss(const Tensor& input, const Tensor& target, const OptTensor& weight,
                                    int64_t reduction, int64_t ignore_index, std::array<bool, 1> grad_mask) {
  const bool reduce = reduction != static_cast<int64_t>(Reduction::None);
  RowwiseProblem p =
      rowwise_prepare(kSpec, input, target, weight, reduction, ignore_index, 0.0, reduce && grad_mask[0], false);
  Tensor loss = rowwise_loss_buffer(p);
  p.args.mode = RowMode::kForward;
  p.args.loss = loss.data_ptr();
  run(p);
  return {loss, rowwise_finish_grad(p.grad_input, input, p.input_dtype)};
}

Tensor nll_loss_backward(const Tensor& grad_output, const Tensor& input, const Tensor& target,
                         const OptTensor& weight, int64_t reduction, int64_t ignore_index,
                         std::array<bool, 1> grad_mask) {
  RowwiseProblem p = rowwise_prepare(kSpec, input, target, weight, reduction, ignore_index, 0.0, grad_mask[0], false);
  if (p.grad_input.defined()) {
    const Tensor go = rowwise_set_grad_output(p, grad_output);
    p.args.mode = RowMode::kBackward;
    run(p);
  }
  return rowwise_finish_grad(p.grad_input, input, p.input_dtype);
}

// ---- autograd (the registry's contract in C++; see lossext/autograd.h) -----------------------------
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

const auto& forward_op() {
  static auto op = c10::Dispatcher::singleton().findSchemaOrThrow("lossext::nll_loss", "").typed<decltype(nll_loss)>();
  return op;
}

const auto& backward_op() {
  static auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("lossext::nll_loss_backward", "").typed<decltype(nll_loss_backward)>();
  return op;
}

struct NllLossFunction : public torch::autograd::Function<NllLossFunction> {
  static variable_list forward(AutogradContext* ctx, const Tensor& input, const Tensor& target, const OptTensor& weight,
                               int64_t reduction, int64_t ignore_index, std::array<bool, 1> grad_mask) {
    const std::array<bool, 1> needs{input.requires_grad()};
    Tensor loss, grad_input;
    {
      at::AutoDispatchBelowADInplaceOrView below;
      std::tie(loss, grad_input) = forward_op().call(input, target, weight, reduction, ignore_index, grad_mask);
    }
    ctx->mark_non_differentiable({grad_input});
    ctx->set_materialize_grads(false);
    const bool scale = scale_mode(reduction, grad_mask, needs);
    ctx->saved_data["scale"] = scale;
    if (scale) {
      ctx->save_for_backward({grad_input});
    } else {
      ctx->save_for_backward({input, target, weight.value_or(Tensor())});
      ctx->saved_data["reduction"] = reduction;
      ctx->saved_data["ignore_index"] = ignore_index;
    }
    return {loss, grad_input};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list out(6);
    const Tensor& go = grads[0];
    if (!go.defined()) return out;
    const variable_list saved = ctx->get_saved_variables();
    if (ctx->saved_data["scale"].toBool()) {
      out[0] = scale_saved_grad(saved[0], go);
      return out;
    }
    const OptTensor weight = saved[2].defined() ? OptTensor(saved[2]) : OptTensor();
    out[0] = backward_op().call(go, saved[0], saved[1], weight, ctx->saved_data["reduction"].toInt(),
                                ctx->saved_data["ignore_index"].toInt(), {true});
    return out;
  }
};

std::tuple<Tensor, Tensor> nll_loss_autograd(const Tensor& input, const Tensor& target, const OptTensor& weight,
                                             int64_t reduction, int64_t ignore_index, std::array<bool, 1> grad_mask) {
  check_weight_not_differentiable("nll_loss", weight);
  auto r = NllLossFunction::apply(input, target, weight, reduction, ignore_index, grad_mask);
  return {r[0], r[1]};
}
}  // namespace

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("nll_loss(Tensor input, Tensor target, Tensor? weight, int reduction, int ignore_index, "
        "bool[1] grad_mask) -> (Tensor, Tensor)");
  m.def("nll_loss_backward(Tensor grad_output, Tensor input, Tensor target, Tensor? weight, int reduction, "
        "int ignore_index, bool[1] grad_mask) -> Tensor");
}

TORCH_LIBRARY_IMPL(lossext, CPU, m) {
  m.impl("nll_loss", &lossext::ops::nll_loss);
  m.impl("nll_loss_backward", &lossext::ops::nll_loss_backward);
}

TORCH_LIBRARY_IMPL(lossext, Autograd, m) {
  m.impl("nll_loss", &lossext::ops::nll_loss_autograd);
}
