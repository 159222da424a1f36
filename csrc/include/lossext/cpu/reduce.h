// Deterministic CPU reductions (ISA-compiled code).
//
// Work is cut into fixed-size chunks that do not depend on the thread count; chunks run in
// parallel and their partial sums are added in chunk order, in double. The result has the same
// bits for any number of threads. Inside a chunk, loops accumulate a short run (a tile of a few
// vectors) in the element's math type and fold each tile into a double: the float32 error stays
// at the level of a tile, not of the whole tensor (cascade summation).
#pragma once

#include <ATen/Parallel.h>
#include <c10/util/SmallVector.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace lossext::CPU_CAPABILITY {

// Sum of several doubles at once (a loss and a weight total, for instance).
template <int N>
struct Sums {
  double v[N] = {};
  Sums& operator+=(const Sums& o) {
    for (int i = 0; i < N; ++i) v[i] += o.v[i];
    return *this;
  }
};

// fn(begin, end) -> Acc for each chunk [begin, end) of [0, n); returns the ordered sum.
template <class Acc, class F>
Acc chunked_reduce(int64_t n, int64_t chunk, const F& fn) {
  Acc total{};
  if (n <= 0) return total;
  const int64_t nchunks = (n + chunk - 1) / chunk;
  if (nchunks == 1) return fn(int64_t{0}, n);
  std::vector<Acc> part(nchunks);
  at::parallel_for(0, nchunks, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) part[c] = fn(c * chunk, std::min(n, (c + 1) * chunk));
  });
  for (const auto& p : part) total += p;
  return total;
}

// fn(begin, end) for each chunk of [0, n), in parallel, nothing returned.
template <class F>
void chunked_for(int64_t n, int64_t chunk, const F& fn) {
  if (n <= 0) return;
  const int64_t nchunks = (n + chunk - 1) / chunk;
  if (nchunks == 1) return fn(int64_t{0}, n);
  at::parallel_for(0, nchunks, 1, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) fn(c * chunk, std::min(n, (c + 1) * chunk));
  });
}

}  // namespace lossext::CPU_CAPABILITY
