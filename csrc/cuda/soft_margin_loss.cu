#include <lossext/cuda/pointwise.cuh>
#include <losses/soft_margin_loss.h>

LOSSEXT_CUDA_POINTWISE(lossext::soft_margin_loss_stub, lossext::SoftMarginLossOp);
