#include <lossext/cpu/pointwise.h>
#include <losses/hinge_embedding_loss.h>

LOSSEXT_CPU_POINTWISE(lossext::hinge_embedding_loss_stub, lossext::HingeEmbeddingLossOp);
