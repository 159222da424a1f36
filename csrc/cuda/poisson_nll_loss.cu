#include <lossext/cuda/pointwise.cuh>
#include <lossext/ops.h>
#include <lossext/pointwise_op.h>
#include <losses/poisson_nll_loss.h>

#include <torch/library.h>

LOSSEXT_CUDA_POINTWISE(lossext::poisson_nll_loss_stub, lossext::PoissonNLLOp);

TORCH_LIBRARY_IMPL(lossext, CUDA, m) {
  LOSSEXT_POINTWISE_OP_IMPL(m, poisson_nll_loss, lossext::ops::poisson_nll_loss_call, 2);
}
