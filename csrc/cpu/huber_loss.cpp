#include <lossext/cpu/pointwise.h>
#include <losses/huber_loss.h>

LOSSEXT_CPU_POINTWISE(lossext::huber_loss_stub, lossext::HuberLossOp);
