#include <lossext/cpu/pointwise.h>
#include <losses/soft_margin_loss.h>

LOSSEXT_CPU_POINTWISE(lossext::soft_margin_loss_stub, lossext::SoftMarginLossOp);
