// nll_loss host functions (CPU and CUDA share them; the stub picks the kernels). Argument rules,
// geometry and buffers are the row-wise ones shared with cross_entropy (lossext/rowwise_host.h).
#include <lossext/autograd.h>
#include <lossext/composite.h>
#include <lossext/host.h>
#include <lossext/registration.h>
#include <lossext/rowwise_host.h>
#include <losses/nll_loss.h>

#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::nll_loss_stub, lossext::NllLossFn);

namespace lossext::ops {
namespace {
constexpr RowwiseSpec kSpec{"nll_loss", /*allow_prob=*/false, /*need_layout=*/false};

void run(const RowwiseProblem& p) {
  c10::OptionalDeviceGuard guard(p.input.device());
  nll_loss_stub(p.input.device().type())(p.args, NllLossParams{});
}
}  // namespace

std::tuple<Tensor, Tensor> nll_loss(const Tensor& input, const Tensor& target, const OptTensor& weight,
                                    int64_t reduction, int64_t ignore_index, std::array<bool, 1> grad_mask) {
  const bool grads = reduction != static_cast<int64_t>(Reduction::None) && rowwise_forward_grads({input, target, weight.value_or(Tensor())});
  RowwiseProblem p = rowwise_prepare(kSpec, input, target, weight, reduction, ignore_index, grads && grad_mask[0], false);
  Tensor loss = rowwise_loss_buffer(p);
  p.args.mode = RowMode::kForward;
  p.args.loss = loss.data_ptr();
  run(p);
  return {loss, rowwise_finish_grad(p.grad_input, input, p.input_dtype)};
}

Tensor nll_loss_backward(const Tensor& grad_output, const Tensor& input, const Tensor& target,
                         const OptTensor& weight, int64_t reduction, int64_t ignore_index,
                         std::array<bool, 1> grad_mask) {
  RowwiseProblem p = rowwise_prepare(kSpec, input, target, weight, reduction, ignore_index, grad_mask[0], false);
  if (p.grad_input.defined()) {
    const Tensor go = rowwise_set_grad_output(p, grad_output);
    p.args.mode = RowMode::kBackward;
    run(p);
  }
  return rowwise_finish_grad(p.grad_input, input, p.input_dtype);
}
}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("nll_loss(Tensor input, Tensor target, Tensor? weight, int reduction, int ignore_index, "
        "bool[1] grad_mask) -> (Tensor, Tensor)");
  m.def("nll_loss_backward(Tensor grad_output, Tensor input, Tensor target, Tensor? weight, int reduction, "
        "int ignore_index, bool[1] grad_mask) -> Tensor");
}

// The loss in ATen arithmetic, for second derivatives only (lossext/composite.h).
static at::Tensor nll_loss_composite(const lossext::autograd::Args& a) {
  using namespace lossext::autograd;
  return cross_entropy(tensor(a, 0), tensor(a, 1), tensor(a, 2), int_at(a, 3), int_at(a, 4), 0.0, false);
}
LOSSEXT_AUTOGRAD(nll_loss, &nll_loss_composite, "input");

namespace {
void impls(torch::Library& m) {
  m.impl("nll_loss", &lossext::ops::nll_loss);
  m.impl("nll_loss_backward", &lossext::ops::nll_loss_backward);
}
}  // namespace
LOSSEXT_IMPL_ALL_DEVICES(impls);
