#include <lossext/cuda/pointwise.cuh>
#include <losses/hinge_embedding_loss.h>

LOSSEXT_CUDA_POINTWISE(lossext::hinge_embedding_loss_stub, lossext::HingeEmbeddingLossOp);
