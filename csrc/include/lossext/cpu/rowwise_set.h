// The CPU row-wise driver for target-set losses (F::kTargetSet; multilabel_margin_loss; contract in
// lossext/rowwise.h). The target is an (N, C) int64 tensor (strides tN, tC): row n lists its
// target classes, ended by the first -1. `other` is the (N, C) is-target buffer (1 at the row's
// targets, 0 elsewhere): the forward writes it, a separate backward reads it. Per row:
//   - pass 1 once per listed target j, relative to x_{t_j} (kTargetStats), with the is-target row as
//     the second operand; finish gives target j's loss term and coefficients k_j;
//   - pass 2, one sweep: dL/dx_c = sum_j grad(k_j, x_c, y_c); then each target class gets the sum
//     of grad_target(k_j) over its listings.
// The backward recomputes the k_j (pass 1 again: kSaved = 0). Rows layout only (the host makes the
// class dim contiguous); fixed chunks of rows and double sums, as the row-wise driver.
#pragma once

#include <lossext/cpu/rowwise.h>

#include <vector>

namespace lossext::CPU_CAPABILITY {

template <class T, class F>
struct RowSetDriver : RowDriver<T, F> {
  using Base = RowDriver<T, F>;
  using M = typename Base::M;
  using V = typename Base::V;
  static constexpr int64_t L = Base::L;
  static constexpr int kS = Base::kS, kK = Base::kK;
  using Base::a;
  using Base::f;
  using Base::fwd;
  using Base::none;

  struct Coefs {  // k_j of one listed target, as scalars and as broadcast vectors
    M k[kK];
    V v[kK];
  };

  template <class P>
  RowSetDriver(const RowwiseArgs& args, const P& params, const char* name) : Base(args, params, name) {}

  int64_t target_at(int64_t n, int64_t c) const { return static_cast<const int64_t*>(a.target)[n * a.tN + c * a.tC]; }

  // Every target entry (also after the first -1) in [-1, C), as torch checks: RuntimeError.
  void check_targets() const {
    struct Acc {
      bool bad = false;
      int64_t value = 0;
      Acc& operator+=(const Acc& o) {
        if (!bad && o.bad) *this = o;
        return *this;
      }
    };
    const Acc acc = chunked_reduce<Acc>(a.N, units_per_chunk(a.C), [&](int64_t b, int64_t e) {
      Acc r;
      for (int64_t n = b; n < e && !r.bad; ++n)
        for (int64_t c = 0; c < a.C; ++c) {
          const int64_t t = target_at(n, c);
          if (t < -1 || t >= a.C) {
            r.bad = true;
            r.value = t;
            break;
          }
        }
      return r;
    });
    TORCH_CHECK(!acc.bad, this->op, ": target ", acc.value, " is out of range (", a.C,
                " classes; a row lists classes in [0, C), ended by -1)");
  }

  // Loss of row n (forward) and its gradient. `tl` / `kl`: per-thread scratch (targets, k_j).
  M row(int64_t n, double inv, std::vector<int64_t>& tl, std::vector<Coefs>& kl) const {
    const auto r = this->row_at(n, 0);
    tl.clear();
    for (int64_t c = 0; c < a.C; ++c) {
      const int64_t t = target_at(n, c);
      if (t < 0) break;
      tl.push_back(t);
    }
    if (fwd) {
      T* mask = const_cast<T*>(r.y);
      std::fill_n(mask, a.C, T(0));
      for (int64_t t : tl) mask[t] = T(1);
    }
    const M rs = this->scale_of(n, 0, inv);
    kl.resize(tl.size());
    M loss = 0;
    for (size_t q = 0; q < tl.size(); ++q) {
      const RowSample<M> smp{M(1), static_cast<M>(r.x[tl[q]]), rs};
      V vs[kS];
      M st[kS];
      row_init(f, vs, V(M(0)), V(smp.xt));
      this->pass1(r.x, r.y, r.z, 0, a.C, vs);
      this->fold(vs, st);
      loss += f.finish(st, smp, kl[q].k, nullptr);
      for (int i = 0; i < kK; ++i) kl[q].v[i] = V(kl[q].k[i]);
    }
    if (r.g) {
      for (int64_t j = 0; j < a.C; j += L) {
        const int64_t cnt = std::min<int64_t>(L, a.C - j);
        const V xv = vload(r.x + j, cnt), yv = vload(r.y + j, cnt);
        V acc(M(0));
        for (const Coefs& k : kl) {
          V gx, gy;
          f.grad(k.v, xv, yv, V(M(1)), gx, gy);
          acc = acc + gx;
        }
        vstore(r.g + j, acc, cnt);
      }
      for (int64_t t : tl) r.g[t] = T(0);
      for (size_t q = 0; q < tl.size(); ++q)
        r.g[tl[q]] = static_cast<T>(static_cast<M>(r.g[tl[q]]) + f.grad_target(kl[q].k, M(0)));
    }
    return loss;
  }

  void run() const {
    check_targets();
    const double denom = static_cast<double>(a.N);  // the mean over the rows (NaN for an empty batch)
    const double inv = a.reduction == Reduction::Mean ? 1.0 / denom : 1.0;
    const double sum = chunked_reduce<double>(a.N, units_per_chunk(a.C), [&](int64_t b, int64_t e) {
      std::vector<int64_t> tl;
      std::vector<Coefs> kl;
      tl.reserve(a.C);
      double acc = 0;
      for (int64_t n = b; n < e; ++n) {
        const M l = row(n, inv, tl, kl);
        if (fwd) {
          acc += static_cast<double>(l);
          if (none) static_cast<T*>(a.loss)[n] = static_cast<T>(l);
        }
      }
      return acc;
    });
    if (fwd && !none) *static_cast<T*>(a.loss) = static_cast<T>(a.reduction == Reduction::Mean ? sum / denom : sum);
  }
};

// Runs the target-set loss functor F (of math type math_t<T>) on a, for dtype T.
template <class T, class F, class P>
void rowwise_set_cpu(const RowwiseArgs& a, const P& params, const char* op) {
  RowSetDriver<T, F>(a, params, op).run();
}

}  // namespace lossext::CPU_CAPABILITY
