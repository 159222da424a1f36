#include <lossext/host.h>
#include <lossext/registration.h>
#include <losses/scale_grad.h>

#include <torch/library.h>

LOSSEXT_DEFINE_STUB(lossext::scale_grad_stub, lossext::PointwiseFn);

namespace lossext::ops {

Tensor scale_grad(const Tensor& grad, const Tensor& grad_output) {
  TORCH_CHECK(grad_output.dim() == 0, "scale_grad: expected a 0-d grad_output, but got shape ",
              shape_str(grad_output.sizes()));
  const PointwiseCall call{.op = "scale_grad", .stub = &scale_grad_stub, .inputs = {grad}, .reduction = Reduction::None,
                           .grad_mask = {true}};
  return pointwise_backward(call, grad_output.expand(grad.sizes()))[0];
}

}  // namespace lossext::ops

TORCH_LIBRARY_FRAGMENT(lossext, m) {
  m.def("scale_grad(Tensor grad, Tensor grad_output) -> Tensor");
}

namespace {
void impls(torch::Library& m) { m.impl("scale_grad", &lossext::ops::scale_grad); }
}  // namespace
LOSSEXT_IMPL_ALL_DEVICES(impls);
