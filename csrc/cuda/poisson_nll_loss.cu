#include <lossext/cuda/pointwise.cuh>
#include <losses/poisson_nll_loss.h>

LOSSEXT_CUDA_POINTWISE(lossext::poisson_nll_loss_stub, lossext::PoissonNLLOp);
