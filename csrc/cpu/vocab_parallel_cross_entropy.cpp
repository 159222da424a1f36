// vocab_parallel_cross_entropy on the CPU (losses/vocab_parallel_cross_entropy.h): the rank's row
// statistics and its gradient run on the row-wise driver (cross_entropy's functor, sliced); the
// combine of the gathered statistics is a short loop over the ranks per row.
#include <lossext/cpu/reduce.h>
#include <lossext/cpu/rowwise.h>
#include <losses/vocab_parallel_cross_entropy.h>

#include <ATen/Dispatch.h>
#include <c10/util/Exception.h>

namespace lossext::CPU_CAPABILITY {
namespace {

template <template <class, int> class Row>
void run_rows(const RowwiseArgs& a, const CrossEntropyParams& p, const char* op) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "vocab_parallel_cross_entropy_cpu", [&] {
    using M = math_t<scalar_t>;
    switch (vpce_kind(a.weight != nullptr, p.smoothing)) {
      case kCEPlain: return rowwise_cpu<scalar_t, Row<M, kCEPlain>>(a, p, op);
      case kCESmooth: return rowwise_cpu<scalar_t, Row<M, kCESmooth>>(a, p, op);
      default: return rowwise_cpu<scalar_t, Row<M, kCESmoothW>>(a, p, op);
    }
  });
}

void vpce_stats_cpu(const RowwiseArgs& a, const CrossEntropyParams& p) {
  run_rows<VocabStatsRow>(a, p, "vocab_parallel_cross_entropy");
}

void vpce_grad_cpu(const RowwiseArgs& a, const CrossEntropyParams& p) {
  run_rows<VocabGradRow>(a, p, "vocab_parallel_cross_entropy");
}

struct CombineAcc {
  double loss = 0, den = 0;
  int bad = 0;
  int64_t bad_target = 0;
  CombineAcc& operator+=(const CombineAcc& o) {
    loss += o.loss;
    den += o.den;
    if (!bad && o.bad) {
      bad = o.bad;
      bad_target = o.bad_target;
    }
    return *this;
  }
};

void vpce_combine_cpu(const VpceCombineArgs& a, const char* op) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "vpce_combine_cpu", [&] {
    using M = math_t<scalar_t>;
    const bool none = a.reduction == Reduction::None;
    // Fixed chunks of rows, their sums added in order: the same bits for any thread count.
    const CombineAcc acc = chunked_reduce<CombineAcc>(a.N, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, a.P)),
                                                      [&](int64_t b, int64_t e) {
      CombineAcc r;
      for (int64_t n = b; n < e; ++n) {
        double den;
        int bad;
        const M l = vpce_combine_row<M, scalar_t>(a, n, static_cast<M*>(a.saved) + n * kVpceSaved, den, bad);
        if (bad && !r.bad) {
          r.bad = bad;
          r.bad_target = a.target[n];
        }
        r.loss += static_cast<double>(l);
        r.den += den;
        if (none) static_cast<scalar_t*>(a.loss)[n] = static_cast<scalar_t>(l);
      }
      return r;
    });
    TORCH_CHECK_INDEX(acc.bad != 1, op, ": Target ", acc.bad_target, " is out of bounds (in no rank's vocabulary ",
                      "slice)");
    TORCH_CHECK(acc.bad != 2, op, ": target ", acc.bad_target, " is in the vocabulary slices of several ranks ",
                "(overlapping vocab_start ranges)");
    *a.denominator = acc.den;
    if (!none) {
      *static_cast<scalar_t*>(a.loss) =
          static_cast<scalar_t>(a.reduction == Reduction::Mean ? acc.loss / acc.den : acc.loss);
    }
  });
}

}  // namespace
}  // namespace lossext::CPU_CAPABILITY

LOSSEXT_REGISTER_CPU(lossext::vpce_stats_stub, &lossext::CPU_CAPABILITY::vpce_stats_cpu);
LOSSEXT_REGISTER_CPU(lossext::vpce_grad_stub, &lossext::CPU_CAPABILITY::vpce_grad_cpu);
LOSSEXT_REGISTER_CPU(lossext::vpce_combine_stub, &lossext::CPU_CAPABILITY::vpce_combine_cpu);
