#include <lossext/cuda/pointwise.cuh>
#include <losses/mse_loss.h>

LOSSEXT_CUDA_POINTWISE(lossext::mse_loss_stub, lossext::MseLossOp);
