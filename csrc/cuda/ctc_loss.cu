// ctc_loss on CUDA (losses/ctc_loss.h). No host sync, no float atomics:
//   prep        a block per sample: validates its lengths and labels (an invalid sample is flagged:
//               NaN loss and NaN gradient), its target offset, the first position of each label
//               and, per label position, the next position with the same label (integer atomicMin
//               only: order-independent)
//   alpha_beta  2N blocks: block n runs alpha of sample n over t, block N + n runs its beta, threads
//               over s (any S': threads loop over s; the previous row is re-read from global memory
//               after __syncthreads)
//   grad        a block per (t, n) row: the block max of alpha + beta, the blank sum as a fixed-tree
//               block sum, each other class walks its chain of positions in increasing s
//   finalize    one block: the per-sample losses and the reduced loss (double, fixed order)
//   scale       the backward: grad = raw * grad_output * the reduction's per-sample scale
#include <lossext/cuda/utils.cuh>
#include <losses/ctc_loss.h>

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>

#include <climits>
#include <limits>

namespace lossext::cuda {
namespace {

constexpr int kThreads = 256;

template <class M>
__device__ __forceinline__ M ninf() { return -std::numeric_limits<M>::infinity(); }

// Max over the block, returned to every thread (a fixed tree: deterministic).
template <class M>
__device__ M block_max_all(M v, M* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < nwarps ? shared[lane] : ninf<M>();
  v = warp_max(v);
  __syncthreads();
  if (threadIdx.x == 0) shared[0] = v;
  __syncthreads();
  return shared[0];
}

struct Scratch {
  int64_t* offset;    // (N) first target element of each sample
  int* valid;         // (N)
  int* first_pos;     // (N, C) first position s of label c in l' (INT_MAX: absent)
  int* next_same;     // (N, Spm) next position with the label of s (INT_MAX: none)
  void* alpha;        // (N, T, Spm)
  void* beta;         // (N, T, Spm)
  void* nll;          // (N)
  int64_t Spm;        // 2 * max_target + 1
};

__device__ __forceinline__ int64_t label_of(const CtcArgs& a, const Scratch& w, int64_t n, int64_t s) {
  return (s & 1) ? a.targets[w.offset[n] + ((s - 1) / 2) * a.tg_stride_s] : a.blank;
}

__global__ void prep_kernel(const CtcArgs a, const Scratch w) {
  const int64_t n = blockIdx.x;
  __shared__ int64_t part[kThreads];
  // The offset of a concatenated sample: the sum of the earlier target lengths (integers: exact).
  int64_t off = 0;
  if (a.concatenated) {
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) off += a.target_lengths[i];
    part[threadIdx.x] = off;
    __syncthreads();
    if (threadIdx.x == 0) {
      int64_t s = 0;
      for (int i = 0; i < blockDim.x; ++i) s += part[i];
      part[0] = s;
    }
    __syncthreads();
    off = part[0];
  } else {
    off = n * a.tg_stride_n;
  }
  const int64_t Ti = a.input_lengths[n], L = a.target_lengths[n];
  bool ok = Ti >= 0 && Ti <= a.T && L >= 0 && L <= a.max_target &&
            (a.concatenated ? (off >= 0 && off + L <= a.tg_size) : L <= a.tg_size);
  int* first = w.first_pos + n * a.C;
  for (int64_t c = threadIdx.x; c < a.C; c += blockDim.x) first[c] = INT_MAX;
  bool bad = false;
  if (ok) {
    for (int64_t i = threadIdx.x; i < L; i += blockDim.x) {
      const int64_t v = a.targets[off + i * a.tg_stride_s];
      bad |= v < 0 || v >= a.C || v == a.blank;
    }
  }
  ok = ok && !__syncthreads_or(bad);
  if (threadIdx.x == 0) {
    w.offset[n] = off;
    w.valid[n] = ok;
  }
  if (!ok) return;
  int* next = w.next_same + n * w.Spm;
  const int64_t* tg = a.targets + off;
  for (int64_t i = threadIdx.x; i < L; i += blockDim.x) {
    const int64_t v = tg[i * a.tg_stride_s];
    atomicMin(first + v, int(2 * i + 1));
    int nx = INT_MAX;
    for (int64_t j = i + 1; j < L; ++j) {
      if (tg[j * a.tg_stride_s] == v) {
        nx = int(2 * j + 1);
        break;
      }
    }
    next[2 * i + 1] = nx;
  }
}

template <class M>
__global__ void alpha_beta_kernel(const CtcArgs a, const Scratch w) {
  const bool is_beta = blockIdx.x >= a.N;
  const int64_t n = is_beta ? blockIdx.x - a.N : blockIdx.x;
  if (!w.valid[n]) return;
  const int64_t Ti = a.input_lengths[n], L = a.target_lengths[n], Sp = 2 * L + 1, Spm = w.Spm;
  const M* lp = static_cast<const M*>(a.log_probs);
  const int64_t NC = a.N * a.C;
  const auto e = [&](int64_t t, int64_t s) { return lp[t * NC + n * a.C + label_of(a, w, n, s)]; };
  if (Ti == 0) {
    if (!is_beta && threadIdx.x == 0) static_cast<M*>(w.nll)[n] = L == 0 ? -M(0) : -ninf<M>();
    return;
  }
  // Not const/__restrict__: rows written by other threads of the block are read after __syncthreads.
  M* D = static_cast<M*>(is_beta ? w.beta : w.alpha) + n * a.T * Spm;
  if (!is_beta) {
    for (int64_t s = threadIdx.x; s < Sp; s += blockDim.x) D[s] = s < 2 ? e(0, s) : ninf<M>();
    for (int64_t t = 1; t < Ti; ++t) {
      __syncthreads();
      const M* prev = D + (t - 1) * Spm;
      for (int64_t s = threadIdx.x; s < Sp; s += blockDim.x) {
        const bool skip = (s & 1) && s >= 3 && label_of(a, w, n, s) != label_of(a, w, n, s - 2);
        D[t * Spm + s] = e(t, s) + ctc_lse3<M>(prev[s], s >= 1 ? prev[s - 1] : ninf<M>(), skip ? prev[s - 2] : ninf<M>());
      }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      const M* last = D + (Ti - 1) * Spm;
      static_cast<M*>(w.nll)[n] = -ctc_lse3<M>(last[Sp - 1], L > 0 ? last[Sp - 2] : ninf<M>(), ninf<M>());
    }
  } else {
    const int64_t t0 = Ti - 1;
    for (int64_t s = threadIdx.x; s < Sp; s += blockDim.x) D[t0 * Spm + s] = s >= Sp - 2 ? e(t0, s) : ninf<M>();
    for (int64_t t = Ti - 2; t >= 0; --t) {
      __syncthreads();
      const M* nx = D + (t + 1) * Spm;
      for (int64_t s = threadIdx.x; s < Sp; s += blockDim.x) {
        const bool skip = (s & 1) && s + 2 < Sp && label_of(a, w, n, s + 2) != label_of(a, w, n, s);
        D[t * Spm + s] = e(t, s) + ctc_lse3<M>(nx[s], s + 1 < Sp ? nx[s + 1] : ninf<M>(), skip ? nx[s + 2] : ninf<M>());
      }
    }
  }
}

template <class M>
__global__ void grad_kernel(const CtcArgs a, const Scratch w) {
  __shared__ M red[32];
  const int64_t r = blockIdx.x, t = r / a.N, n = r - t * a.N;
  M* g = static_cast<M*>(a.grad) + r * a.C;
  const M* row = static_cast<const M*>(a.log_probs) + r * a.C;
  const auto fill = [&](M v) {
    for (int64_t c = threadIdx.x; c < a.C; c += blockDim.x) g[c] = v;
  };
  if (!w.valid[n]) return fill(std::numeric_limits<M>::quiet_NaN());
  const int64_t Ti = a.input_lengths[n], L = a.target_lengths[n], Sp = 2 * L + 1;
  if (t >= Ti) return fill(M(0));
  const M nll = static_cast<const M*>(w.nll)[n];
  if (nll == -ninf<M>()) return fill(a.zero_infinity ? M(0) : std::numeric_limits<M>::quiet_NaN());
  const M scale = a.grad_reduced ? M(ctc_sample_scale(a.reduction, L, a.N)) : M(1);
  const M* A = static_cast<const M*>(w.alpha) + (n * a.T + t) * w.Spm;
  const M* B = static_cast<const M*>(w.beta) + (n * a.T + t) * w.Spm;
  M m = ninf<M>();
  for (int64_t s = threadIdx.x; s < Sp; s += blockDim.x) m = ::max(m, A[s] + B[s]);
  m = block_max_all(m, red);
  M sb = 0;  // the blanks: the even positions
  for (int64_t s = 2 * threadIdx.x; s < Sp; s += 2 * blockDim.x) sb += vm::exp(A[s] + B[s] - m);
  sb = block_sum(sb);
  __syncthreads();
  if (threadIdx.x == 0) red[0] = sb;
  __syncthreads();
  sb = red[0];
  const int* first = w.first_pos + n * a.C;
  const int* next = w.next_same + n * w.Spm;
  const M base = m + nll;
  for (int64_t c = threadIdx.x; c < a.C; c += blockDim.x) {
    const M x = row[c];
    M v = vm::exp(x);
    M acc = 0;
    bool present = c == a.blank;
    if (present) {
      acc = sb;
    } else {
      for (int p = first[c]; p < Sp; p = next[p]) {  // increasing s: a fixed order
        acc += vm::exp(A[p] + B[p] - m);
        present = true;
      }
    }
    if (present) v -= vm::exp(vm::log(acc) + base - x);
    g[c] = v * scale;
  }
}

template <class M>
__global__ void finalize_kernel(const CtcArgs a, const Scratch w) {
  const M* nll = static_cast<const M*>(w.nll);
  M* out = static_cast<M*>(a.loss);
  double s = 0;
  for (int64_t n = threadIdx.x; n < a.N; n += blockDim.x) {
    M l = nll[n];
    if (!w.valid[n]) l = std::numeric_limits<M>::quiet_NaN();
    else if (a.zero_infinity && l == -ninf<M>()) l = M(0);
    if (a.reduction == 0) out[n] = l;
    else s += double(l) * ctc_sample_scale(a.reduction, a.target_lengths[n], a.N);
  }
  if (a.reduction == 0) return;
  s = block_sum(s);
  if (threadIdx.x == 0) out[0] = static_cast<M>(s);
}

template <class M>
__global__ void scale_kernel(const CtcArgs a) {
  const M* raw = static_cast<const M*>(a.raw);
  const M* go = static_cast<const M*>(a.grad_output);
  M* g = static_cast<M*>(a.grad);
  const int64_t total = a.T * a.N * a.C;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = (i / a.C) % a.N;
    g[i] = raw[i] * go[n * a.go_stride] * M(ctc_sample_scale(a.reduction, a.target_lengths[n], a.N));
  }
}

template <class M>
void run(const CtcArgs& a) {
  const auto stream = c10::cuda::getCurrentCUDAStream();
  if (a.mode == CtcMode::kScale) {
    const int64_t total = a.T * a.N * a.C;
    scale_kernel<M><<<grid_for(total, kThreads, 8), kThreads, 0, stream>>>(a);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return;
  }
  int dev = 0;
  C10_CUDA_CHECK(cudaGetDevice(&dev));
  const auto opts = at::TensorOptions().device(c10::Device(c10::DeviceType::CUDA, dev));
  const int64_t Spm = 2 * a.max_target + 1;
  const at::Tensor offset = at::empty({a.N}, opts.dtype(at::kLong));
  const at::Tensor ints = at::empty({a.N + a.N * a.C + a.N * Spm}, opts.dtype(at::kInt));
  const at::ScalarType mt = std::is_same_v<M, double> ? at::kDouble : at::kFloat;
  const at::Tensor alpha = at::empty({a.N, a.T, Spm}, opts.dtype(mt));
  const at::Tensor beta = a.grad ? at::empty({a.N, a.T, Spm}, opts.dtype(mt)) : at::Tensor();
  const at::Tensor nll = at::empty({a.N}, opts.dtype(mt));
  Scratch w;
  w.offset = offset.data_ptr<int64_t>();
  w.valid = ints.data_ptr<int>();
  w.first_pos = w.valid + a.N;
  w.next_same = w.first_pos + a.N * a.C;
  w.alpha = alpha.data_ptr();
  w.beta = a.grad ? beta.data_ptr() : nullptr;
  w.nll = nll.data_ptr();
  w.Spm = Spm;
  prep_kernel<<<a.N, kThreads, 0, stream>>>(a, w);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const int threads = int(std::min<int64_t>(1024, std::max<int64_t>(32, (Spm + 31) / 32 * 32)));
  // Without a gradient only the alpha blocks run.
  alpha_beta_kernel<M><<<a.grad ? 2 * a.N : a.N, threads, 0, stream>>>(a, w);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  if (a.grad) {
    grad_kernel<M><<<a.T * a.N, kThreads, 0, stream>>>(a, w);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  finalize_kernel<M><<<1, kThreads, 0, stream>>>(a, w);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void ctc_loss_cuda(const CtcArgs& a) {
  AT_DISPATCH_FLOATING_TYPES(a.dtype, "ctc_loss_cuda", [&] { run<scalar_t>(a); });
}

}  // namespace
}  // namespace lossext::cuda

LOSSEXT_REGISTER_CUDA(lossext::ctc_loss_stub, &lossext::cuda::ctc_loss_cuda);
