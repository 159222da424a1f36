#include <lossext/cuda/pointwise.cuh>
#include <losses/huber_loss.h>

LOSSEXT_CUDA_POINTWISE(lossext::huber_loss_stub, lossext::HuberLossOp);
