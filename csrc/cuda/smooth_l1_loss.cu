#include <lossext/cuda/pointwise.cuh>
#include <losses/smooth_l1_loss.h>

LOSSEXT_CUDA_POINTWISE(lossext::smooth_l1_loss_stub, lossext::SmoothL1LossOp);
