// Infrastructure ops of the autograd layer: grad * grad_output out of place (scale_grad, a
// pointwise op) and in place (scale_grad_, through scale_rows).
#include <lossext/host.h>
#include <lossext/registration.h>
#include <lossext/scale_rows.h>
#include <losses/scale_grad.h>

#include <ATen/ops/view_as_complex.h>
#include <ATen/ops/view_as_real.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::scale_grad_stub, lossext::PointwiseFn);
LOSSEXT_DEFINE_STUB(lossext::scale_rows_stub, lossext::ScaleRowsFn);

namespace lossext {

void scale_rows_(const char* op, const at::Tensor& grad, const at::Tensor& factor, int64_t N, int64_t C, int64_t S,
                 bool per_sample) {
  check_floating(op, "grad", grad);
  // Dense (contiguous or a permutation of it): numel consecutive elements from the data pointer.
  TORCH_CHECK(grad.is_non_overlapping_and_dense() && grad.numel() == N * C * S, op, ": expected a dense gradient of ",
              N * C * S, " elements, but got shape ", shape_str(grad.sizes()), " and strides ",
              shape_str(grad.strides()));
  TORCH_CHECK(factor.device() == grad.device(), op, ": grad_output is on ", factor.device(), " but the gradient is on ",
              grad.device());
  if (per_sample) {
    TORCH_CHECK(factor.numel() == N * S, op, ": expected a grad_output of ", N * S, " elements (one per sample), but got shape ",
                shape_str(factor.sizes()));
  } else {
    TORCH_CHECK(factor.dim() == 0, op, ": expected a 0-d grad_output, but got shape ", shape_str(factor.sizes()));
  }
  const at::Tensor f = (factor.scalar_type() == grad.scalar_type() ? factor : factor.to(grad.scalar_type())).contiguous();
  if (grad.numel() == 0) return;
  ScaleRowsArgs a;
  a.dtype = grad.scalar_type();
  a.N = N;
  a.C = C;
  a.S = S;
  a.grad = grad.data_ptr();
  a.factor = f.const_data_ptr();
  a.per_sample = per_sample;
  c10::OptionalDeviceGuard guard(grad.device());
  scale_rows_stub(grad.device().type())(a);
}

namespace ops {

Tensor scale_grad(const Tensor& grad, const Tensor& grad_output) {
  TORCH_CHECK(grad_output.dim() == 0, "scale_grad: expected a 0-d grad_output, but got shape ",
              shape_str(grad_output.sizes()));
  // A complex gradient of a real loss (complex l1_loss): its (re, im) pairs times the real grad_output.
  if (grad.is_complex()) return at::view_as_complex(scale_grad(at::view_as_real(grad), grad_output));
  const PointwiseCall call{.op = "scale_grad", .stub = &scale_grad_stub, .inputs = {grad}, .reduction = Reduction::None,
                           .grad_mask = {true}};
  return pointwise_backward(call, grad_output.expand(grad.sizes()))[0];
}

void scale_grad_(Tensor& grad, const Tensor& grad_output) {
  // Any dense gradient is scaled as one flat row; a complex one (complex l1_loss) as its (re, im) pairs.
  if (grad.is_complex()) {
    const Tensor parts = at::view_as_real(grad);
    scale_rows_("scale_grad_", parts, grad_output, 1, parts.numel(), 1, false);
    return;
  }
  scale_rows_("scale_grad_", grad, grad_output, 1, grad.numel(), 1, false);
}

}  // namespace ops
}  // namespace lossext

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("scale_grad(Tensor grad, Tensor grad_output) -> Tensor");
  // grad *= grad_output (0-d) in place; a no-op when grad_output is 1, decided on the device. For
  // the eager backward of a gradient the forward wrote and nothing else holds (lossext/_registry.py).
  m.def("scale_grad_(Tensor(a!) grad, Tensor grad_output) -> ()");
}

namespace {
void impls(torch::Library& m) {
  m.impl("scale_grad", &lossext::ops::scale_grad);
  m.impl("scale_grad_", &lossext::ops::scale_grad_);
}
}  // namespace
LOSSEXT_IMPL_ALL_DEVICES(impls);
