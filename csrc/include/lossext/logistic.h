// Stable log / logistic math shared by the losses on probabilities and logits (binary_cross_entropy,
// binary_cross_entropy_with_logits, multilabel_soft_margin_loss, ...). Written over lossext::vm, so
// it runs on host scalars, CUDA device scalars and at::vec::Vectorized lanes alike.
//
// Speed on the CPU: a Sleef exp/log/log1p is an out-of-line call, and every live vector register
// is spilled around it; a vectorized log1p costs ~3x a log. The float-vector paths below stay
// inline (torch's exp_u20, short polynomials, a Newton-refined reciprocal estimate) and are ~2x
// cheaper for the logistic pieces and the logs of binary_cross_entropy.
// Accuracy stays within a few float ulps; double and scalar paths use the libm/Sleef functions.
#pragma once

#include <lossext/vmath.h>

#include <limits>
#include <type_traits>

namespace lossext {

// exp(x) for x <= 0 (or NaN). Float vectors: torch's inline exp_u20, which its own CPU kernels use
// too (silu-style activations, flash attention): measured <= 5 ulp on [-87, 0]; results below
// FLT_MIN flush to 0. NaN is passed through (exp_u20 clamps its input and would make it a number).
C10_HOST_DEVICE inline float exp_nonpos(float x) { return vm::exp(x); }
C10_HOST_DEVICE inline double exp_nonpos(double x) { return vm::exp(x); }

// log1p(t) for 0 <= t <= 1 (or NaN). Float vectors: t * P(t), P a degree-9 fit of log1p(t)/t on
// [0, 1] (Chebyshev, coefficients rounded to float; <= 1.4 ulp measured), ten FMAs and no call.
C10_HOST_DEVICE inline float log1p_unit(float t) { return vm::log1p(t); }
C10_HOST_DEVICE inline double log1p_unit(double t) { return vm::log1p(t); }

#ifdef LOSSEXT_VMATH_VEC
template <class T>
inline at::vec::Vectorized<T> exp_nonpos(const at::vec::Vectorized<T>& x) {
  using V = at::vec::Vectorized<T>;
  if constexpr (std::is_same_v<T, float>) {
    return V::blendv(x.exp_u20(), x, x.isnan());
  } else {
    return x.exp();
  }
}

template <class T>
inline at::vec::Vectorized<T> log1p_unit(const at::vec::Vectorized<T>& t) {
  using V = at::vec::Vectorized<T>;
  if constexpr (std::is_same_v<T, float>) {
    constexpr float c[10] = {-0.0031760570127516985f, 0.019542526453733444f, -0.056373611092567444f,
                             0.10543623566627502f,    -0.1526966691017151f,  0.1966327428817749f,
                             -0.24951615929603577f,   0.33329710364341736f,  -0.49999892711639404f,
                             1.0f};
    V p(c[0]);
    for (int i = 1; i < 10; ++i) p = at::vec::fmadd(p, t, V(c[i]));
    return p * t;
  } else {
    return t.log1p();
  }
}
#endif

// 1 / u for a positive normal u (or NaN). Float vectors on AVX2/AVX512: the hardware reciprocal
// estimate refined by Newton steps (<= ~1 ulp), instead of a division (a zmm vdivps blocks the
// divider for ~10 cycles, a third of the whole logistic).
C10_HOST_DEVICE inline float recip_pos(float u) { return 1.0f / u; }
C10_HOST_DEVICE inline double recip_pos(double u) { return 1.0 / u; }

#ifdef LOSSEXT_VMATH_VEC
template <class T>
inline at::vec::Vectorized<T> recip_pos(const at::vec::Vectorized<T>& u) {
  using V = at::vec::Vectorized<T>;
  if constexpr (std::is_same_v<T, float>) {
#if defined(CPU_CAPABILITY_AVX512)
    const V r(_mm512_rcp14_ps(u));                          // 14 bits
    return at::vec::fmadd(r, at::vec::fnmadd(u, r, V(1)), r);  // r + r (1 - u r): ~28 bits, then rounding
#elif defined(CPU_CAPABILITY_AVX2)
    V r(_mm256_rcp_ps(u));                                  // 12 bits
    r = at::vec::fmadd(r, at::vec::fnmadd(u, r, V(1)), r);  // ~24 bits
    return at::vec::fmadd(r, at::vec::fnmadd(u, r, V(1)), r);
#endif
  }
  return V(1) / u;
}
#endif

// log(x) for x >= 0 (0 gives -inf; negative gives NaN; NaN and +inf pass through). Float vectors
// on AVX2/AVX512: x = m 2^e with m in (sqrt(1/2), sqrt(2)] (AVX512: getexp/getmant, denormals
// included; AVX2: exponent bits, denormals scaled by 2^23 first), log x = e ln2 + t P(t) with
// t = m - 1 and P a degree-9 fit of log1p(t)/t on that range (<= 1.5 ulp measured), all inline.
C10_HOST_DEVICE inline float log_nonneg(float x) { return vm::log(x); }
C10_HOST_DEVICE inline double log_nonneg(double x) { return vm::log(x); }

#ifdef LOSSEXT_VMATH_VEC
template <class T>
inline at::vec::Vectorized<T> log_nonneg(const at::vec::Vectorized<T>& x) {
  using V = at::vec::Vectorized<T>;
#if defined(CPU_CAPABILITY_AVX512) || defined(CPU_CAPABILITY_AVX2)
  if constexpr (std::is_same_v<T, float>) {
#if defined(CPU_CAPABILITY_AVX512)
    V m(_mm512_getmant_ps(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero));  // [1, 2)
    V e(_mm512_getexp_ps(x));                                         // floor(log2 x)
#else
    const V den = x < V(1.17549435e-38f);  // below FLT_MIN: scale up, the exponent bits need a normal
    const V xs = V::blendv(x, x * V(8388608.0f), den);
    const __m256i bits = _mm256_castps_si256(xs);
    V e(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(127))));
    e = e - (den & V(23.0f));
    V m(_mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)),
                                            _mm256_set1_epi32(0x3f800000))));  // [1, 2)
#endif
    const V big = m > V(1.41421356f);
    m = V::blendv(m, m * V(0.5f), big);
    e = e + (big & V(1.0f));
    const V t = m - V(1.0f);
    constexpr float c[10] = {-0.07451186329126358f, 0.12806610763072968f, -0.13266031444072723f,
                             0.14199650287628174f,  -0.1660836935043335f, 0.20000939071178436f,
                             -0.2500157952308655f,  0.33333346247673035f, -0.49999988079071045f,
                             1.0f};
    V p(c[0]);
    for (int i = 1; i < 10; ++i) p = at::vec::fmadd(p, t, V(c[i]));
    V r = at::vec::fmadd(e, V(0.693147180559945f), p * t);
    r = V::blendv(r, V(-std::numeric_limits<float>::infinity()), x == V(0.0f));
    r = V::blendv(r, V(std::numeric_limits<float>::quiet_NaN()), x < V(0.0f));
    return V::blendv(r, x, x.isnan() | (x == V(std::numeric_limits<float>::infinity())));
  }
#endif
  return x.log();
}
#endif

// log1p(v), given u = 1 + v as rounded in V, for -1 <= v <= 1, with one log instead of a log1p.
// c = (u - 1) - v is exactly the rounding error of u (Fast2Sum, |v| <= 1), and
// log1p(v) = log(u - c) = log(u) - c/u + O(c^2). `inv_u` is 1/u or any value within a factor
// (1 +- |u - 1|) of it, e.g. 2 - u: c is below half an ulp of 1, so the error stays under an ulp of
// the result. c = 0 whenever u is exact (v >= -1/2, or u = 0), so u = 0 (v = -1) gives -inf, not NaN.
template <class V>
C10_HOST_DEVICE inline V log1p_from(const V& v, const V& u, const V& inv_u) {
  const V c = (u - V(1)) - v;
  return log_nonneg(u) - c * inv_u;
}

// exp(-|x|), log1p(exp(-|x|)) and 1 / (1 + exp(-|x|)) of one logit x: the pieces of
//   softplus(-x) = -log sigmoid(x)  = max(-x, 0) + log1p(e^-|x|)
//   softplus(x)  = -log sigmoid(-x) = max(x, 0)  + log1p(e^-|x|)
//   sigmoid(x)   = x >= 0 ? 1 / (1 + e^-|x|) : e^-|x| / (1 + e^-|x|)
// e^-|x| is in [0, 1], so nothing overflows for any finite or infinite x; NaN stays NaN.
template <class V>
struct Logistic {
  V x, e, r, l;  // x, exp(-|x|), 1 / (1 + e), log1p(e)
  C10_HOST_DEVICE explicit Logistic(const V& x_) : x(x_) {
    e = exp_nonpos(V(0) - vm::abs(x));
    r = recip_pos(V(1) + e);
    l = log1p_unit(e);
  }
  C10_HOST_DEVICE V softplus_neg() const { return vm::max(V(0) - x, V(0)) + l; }  // -log sigmoid(x)
  C10_HOST_DEVICE V softplus() const { return vm::max(x, V(0)) + l; }             // -log sigmoid(-x)
  C10_HOST_DEVICE V sigmoid() const { return vm::where(x >= V(0), r, e * r); }
};

}  // namespace lossext
