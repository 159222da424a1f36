// sum_to_size: host function and CPU loop. The loop is compiled once (not per ISA): it is a rare
// path (only broadcasting losses use it) and is bound by memory access, not arithmetic.
#include <lossext/host.h>
#include <lossext/sum_to.h>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <c10/core/DeviceGuard.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

LOSSEXT_DEFINE_STUB(lossext::sum_to_stub, lossext::SumToFn);

namespace lossext {
namespace {

// The gradient is a (nred x nout) matrix: out[o] = sum over r of in[koff(o) + roff(r)]. It is cut
// into tiles of up to kBlock outputs x `rows` reduced indices, both from the shapes only; each tile
// adds its r in a fixed order in double, and the tiles of one output are added in order. So the
// bits do not depend on the thread count, and there is parallel work both for one output summed
// over millions of elements and for millions of outputs summed over two.
constexpr int64_t kBlock = 256;              // outputs per tile
constexpr int64_t kTileElems = 1 << 16;      // elements per tile (at least)
constexpr int64_t kMaxPartials = 1 << 22;    // doubles of tile partials (32 MiB) at most

// Offsets of a run of consecutive linear indices over dims (size, stride), without a division per
// index: an odometer.
struct Odometer {
  int n;
  const int64_t* size;
  const int64_t* stride;
  int64_t idx[kSumToMaxDims];
  int64_t off = 0;
  Odometer(int n_, const int64_t* size_, const int64_t* stride_, int64_t start) : n(n_), size(size_), stride(stride_) {
    for (int d = n - 1; d >= 0; --d) {
      idx[d] = start % size[d];
      start /= size[d];
      off += idx[d] * stride[d];
    }
  }
  void next() {
    for (int d = n - 1; d >= 0; --d) {
      off += stride[d];
      if (++idx[d] < size[d]) return;
      off -= stride[d] * size[d];
      idx[d] = 0;
    }
  }
};

// p[0] + p[stride] + ... (n terms) in double, with 4 interleaved accumulators (a fixed order).
template <class T>
double sum_run(const T* p, int64_t n, int64_t stride) {
  double s[4] = {0, 0, 0, 0};
  int64_t j = 0;
  if (stride == 1) {
    for (; j + 4 <= n; j += 4)
      for (int k = 0; k < 4; ++k) s[k] += static_cast<double>(p[j + k]);
  } else {
    for (; j + 4 <= n; j += 4)
      for (int k = 0; k < 4; ++k) s[k] += static_cast<double>(p[(j + k) * stride]);
  }
  for (; j < n; ++j) s[0] += static_cast<double>(p[j * stride]);
  return (s[0] + s[1]) + (s[2] + s[3]);
}

// sum of in[roff(r)] for r in [r0, r0 + count): runs along the innermost reduced dim, the outer
// reduced dims stepped by an odometer.
template <class T>
double sum_reduced(const T* in, const SumToArgs& a, int64_t r0, int64_t count) {
  if (a.nr == 0) return count > 0 ? static_cast<double>(in[0]) : 0.0;
  const int last = a.nr - 1;
  const int64_t isz = a.rsize[last], ist = a.rstride[last];
  Odometer outer(last, a.rsize, a.rstride, r0 / isz);
  int64_t j = r0 % isz;
  double total = 0;
  while (count > 0) {
    const int64_t n = std::min(count, isz - j);
    total += sum_run(in + outer.off + j * ist, n, ist);
    count -= n;
    j = 0;
    outer.next();
  }
  return total;
}

template <class T>
void sum_to_cpu_impl(const SumToArgs& a) {
  const T* in = static_cast<const T*>(a.in);
  T* out = static_cast<T*>(a.out);
  const int64_t nout = a.nout, nred = a.nred;
  if (nred == 0) {  // a reduced dim of size 0: empty sums (and no odometer over a zero size)
    std::fill(out, out + nout, T(0));
    return;
  }
  const int64_t nblocks = (nout + kBlock - 1) / kBlock;
  int64_t rows = std::max<int64_t>(1, kTileElems / std::min(nout, kBlock));
  rows = std::max(rows, (nred * nout + kMaxPartials - 1) / kMaxPartials);
  const int64_t nchunks = std::max<int64_t>(1, (nred + rows - 1) / rows);
  // Kept dims innermost in memory (column sums): r outer, the block's outputs inner, so the inner
  // loop walks memory in order. Otherwise (row sums) each output's r run is the contiguous one.
  int64_t kmin = INT64_MAX, rmin = INT64_MAX;
  for (int d = 0; d < a.nk; ++d) kmin = std::min(kmin, std::abs(a.kstride[d]));
  for (int d = 0; d < a.nr; ++d) rmin = std::min(rmin, std::abs(a.rstride[d]));
  const bool columns = kmin < rmin;
  std::vector<double> partial(nchunks > 1 ? nchunks * nout : 0);
  at::parallel_for(0, nblocks * nchunks, 1, [&](int64_t tb, int64_t te) {
    double acc[kBlock];
    int64_t koff[kBlock];
    for (int64_t tile = tb; tile < te; ++tile) {
      const int64_t c = tile / nblocks, o0 = (tile % nblocks) * kBlock;
      const int64_t nb = std::min(kBlock, nout - o0);
      const int64_t r0 = c * rows, nr = std::min(rows, nred - r0);
      for (int64_t i = 0; i < nb; ++i) koff[i] = sum_to_offset(o0 + i, a.nk, a.ksize, a.kstride);
      if (columns) {
        std::fill(acc, acc + nb, 0.0);
        Odometer r(a.nr, a.rsize, a.rstride, r0);
        for (int64_t j = 0; j < nr; ++j, r.next()) {
          const T* p = in + r.off;
          for (int64_t i = 0; i < nb; ++i) acc[i] += static_cast<double>(p[koff[i]]);
        }
      } else {
        for (int64_t i = 0; i < nb; ++i) acc[i] = sum_reduced(in + koff[i], a, r0, nr);
      }
      for (int64_t i = 0; i < nb; ++i) {
        if (nchunks == 1) out[o0 + i] = static_cast<T>(acc[i]);
        else partial[c * nout + o0 + i] = acc[i];
      }
    }
  });
  if (nchunks > 1) {
    at::parallel_for(0, nout, 4096, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) {
        double s = 0;
        for (int64_t c = 0; c < nchunks; ++c) s += partial[c * nout + o];
        out[o] = static_cast<T>(s);
      }
    });
  }
}

void sum_to_cpu(const SumToArgs& a) {
  LOSSEXT_DISPATCH_FLOATING_TYPES(a.dtype, "lossext_sum_to_cpu", [&] { sum_to_cpu_impl<scalar_t>(a); });
}

LOSSEXT_REGISTER_CPU(sum_to_stub, &sum_to_cpu);

}  // namespace

at::Tensor sum_to_size(const char* op, const at::Tensor& grad, at::IntArrayRef sizes) {
  const int64_t nd = grad.dim(), off = nd - static_cast<int64_t>(sizes.size());
  TORCH_CHECK(off >= 0, op, ": cannot sum a gradient of shape ", shape_str(grad.sizes()), " to shape ",
              shape_str(sizes));
  SumToArgs a;
  a.dtype = grad.scalar_type();
  a.nout = 1;
  a.nred = 1;
  for (int64_t d = 0; d < nd; ++d) {
    const int64_t g = grad.size(d);
    const bool kept = d >= off && sizes[d - off] == g;
    TORCH_CHECK(kept || d < off || sizes[d - off] == 1, op, ": cannot sum a gradient of shape ",
                shape_str(grad.sizes()), " to shape ", shape_str(sizes));
    if (g == 1) continue;
    TORCH_CHECK(a.nk < kSumToMaxDims && a.nr < kSumToMaxDims, op, ": too many dimensions");
    if (kept) {
      a.ksize[a.nk] = g;
      a.kstride[a.nk++] = grad.stride(d);
      a.nout *= g;
    } else {
      a.rsize[a.nr] = g;
      a.rstride[a.nr++] = grad.stride(d);
      a.nred *= g;
    }
  }
  at::Tensor out = at::empty(sizes, grad.options());
  if (out.numel() == 0) return out;
  a.in = grad.const_data_ptr();
  a.out = out.data_ptr();
  c10::OptionalDeviceGuard guard(grad.device());
  sum_to_stub(grad.device().type())(a);
  return out;
}

}  // namespace lossext
