#include <lossext/cuda/pointwise.cuh>
#include <losses/multilabel_soft_margin_loss.h>

LOSSEXT_CUDA_POINTWISE(lossext::multilabel_soft_margin_loss_stub, lossext::MultilabelSoftMarginOp);
