#include <lossext/cpu/pointwise.h>
#include <losses/smooth_l1_loss.h>

LOSSEXT_CPU_POINTWISE(lossext::smooth_l1_loss_stub, lossext::SmoothL1LossOp);
