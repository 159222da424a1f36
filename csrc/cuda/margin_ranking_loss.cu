#include <lossext/cuda/pointwise.cuh>
#include <losses/margin_ranking_loss.h>

LOSSEXT_CUDA_POINTWISE(lossext::margin_ranking_loss_stub, lossext::MarginRankingOp);
