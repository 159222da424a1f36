#include <lossext/cuda/pointwise.cuh>
#include <lossext/ops.h>
#include <losses/poisson_nll_loss.h>

#include <torch/library.h>

LOSSEXT_CUDA_POINTWISE(lossext::poisson_nll_loss_stub, lossext::PoissonNLLOp);

TORCH_LIBRARY_IMPL(lossext, CUDA, m) {
  m.impl("poisson_nll_loss", &lossext::ops::poisson_nll_loss);
  m.impl("poisson_nll_loss_backward", &lossext::ops::poisson_nll_loss_backward);
}
