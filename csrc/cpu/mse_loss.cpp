#include <lossext/cpu/pointwise.h>
#include <losses/mse_loss.h>

LOSSEXT_CPU_POINTWISE(lossext::mse_loss_stub, lossext::MseLossOp);
