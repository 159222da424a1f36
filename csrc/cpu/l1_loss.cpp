#include <lossext/cpu/pointwise.h>
#include <losses/l1_loss.h>

LOSSEXT_CPU_POINTWISE(lossext::l1_loss_stub, lossext::L1LossOp);
LOSSEXT_CPU_POINTWISE(lossext::l1_loss_complex_stub, lossext::L1ComplexLossOp);
