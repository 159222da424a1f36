#include <lossext/cpu/pointwise.h>
#include <losses/multilabel_soft_margin_loss.h>

LOSSEXT_CPU_POINTWISE(lossext::multilabel_soft_margin_loss_stub, lossext::MultilabelSoftMarginOp);
