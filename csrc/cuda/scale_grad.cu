#include <lossext/cuda/pointwise.cuh>
#include <lossext/ops.h>
#include <losses/scale_grad.h>

#include <torch/library.h>

LOSSEXT_CUDA_POINTWISE(lossext::scale_grad_stub, lossext::ScaleGradOp);

TORCH_LIBRARY_IMPL(lossext, CUDA, m) {
  m.impl("scale_grad", &lossext::ops::scale_grad);
}
