#include <lossext/cuda/pointwise.cuh>
#include <losses/sigmoid_focal_loss.h>

LOSSEXT_CUDA_POINTWISE(lossext::sigmoid_focal_loss_stub, lossext::SigmoidFocalOp);
LOSSEXT_CUDA_POINTWISE(lossext::sigmoid_focal_loss_index_stub, lossext::SigmoidFocalIndexOp);
