#include <lossext/cuda/pointwise.cuh>
#include <losses/l1_loss.h>

LOSSEXT_CUDA_POINTWISE(lossext::l1_loss_stub, lossext::L1LossOp);
LOSSEXT_CUDA_POINTWISE(lossext::l1_loss_complex_stub, lossext::L1ComplexLossOp);
