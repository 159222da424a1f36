#include <lossext/cpu/pointwise.h>
#include <losses/sigmoid_focal_loss.h>

LOSSEXT_CPU_POINTWISE(lossext::sigmoid_focal_loss_stub, lossext::SigmoidFocalOp);
LOSSEXT_CPU_POINTWISE(lossext::sigmoid_focal_loss_index_stub, lossext::SigmoidFocalIndexOp);
