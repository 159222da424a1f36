#include <lossext/cuda/pointwise.cuh>
#include <losses/gaussian_nll_loss.h>

LOSSEXT_CUDA_POINTWISE(lossext::gaussian_nll_loss_stub, lossext::GaussianNLLOp);
LOSSEXT_CUDA_POINTWISE(lossext::count_negative_stub, lossext::CountNegativeOp);
