#include <lossext/cuda/pointwise.cuh>
#include <lossext/ops.h>
#include <losses/gaussian_nll_loss.h>

#include <torch/library.h>

LOSSEXT_CUDA_POINTWISE(lossext::gaussian_nll_loss_stub, lossext::GaussianNLLOp);
LOSSEXT_CUDA_POINTWISE(lossext::count_negative_stub, lossext::CountNegativeOp);

TORCH_LIBRARY_IMPL(lossext, CUDA, m) {
  m.impl("gaussian_nll_loss", &lossext::ops::gaussian_nll_loss);
  m.impl("gaussian_nll_loss_backward", &lossext::ops::gaussian_nll_loss_backward);
}
