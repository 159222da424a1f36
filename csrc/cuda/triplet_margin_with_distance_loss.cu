// triplet_margin_with_distance_loss on CUDA: the pointwise driver with the margin functor.
#include <lossext/cuda/pointwise.cuh>
#include <losses/triplet_margin_with_distance_loss.h>

LOSSEXT_CUDA_POINTWISE(lossext::triplet_margin_with_distance_loss_stub, lossext::TripletMarginDistanceOp);
