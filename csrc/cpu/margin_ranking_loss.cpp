#include <lossext/cpu/pointwise.h>
#include <losses/margin_ranking_loss.h>

LOSSEXT_CPU_POINTWISE(lossext::margin_ranking_loss_stub, lossext::MarginRankingOp);
