// One spelling of the math a loss needs, for the three places its per-element functor runs:
// host scalars, CUDA device scalars, and at::vec::Vectorized lanes in the ISA-compiled CPU loops.
// A functor written as `template <class V> C10_HOST_DEVICE ... ` over these helpers and the
// ordinary operators (+ - * / < > ...) compiles for all three.
//
// Conventions:  V(1) for constants (Vectorized has no mixed scalar operators);
//               `a < b` is a bool for scalars and a lane mask for vectors;
//               where(mask, a, b) picks a where mask is set.
#pragma once

#include <c10/macros/Macros.h>
#include <cmath>

#if !defined(__CUDACC__) && defined(CPU_CAPABILITY)
#include <ATen/cpu/vec/vec.h>
#define LOSSEXT_VMATH_VEC 1
#endif

namespace lossext::vm {

C10_HOST_DEVICE inline float exp(float x) { return ::expf(x); }
C10_HOST_DEVICE inline double exp(double x) { return ::exp(x); }
C10_HOST_DEVICE inline float log(float x) { return ::logf(x); }
C10_HOST_DEVICE inline double log(double x) { return ::log(x); }
C10_HOST_DEVICE inline float log1p(float x) { return ::log1pf(x); }
C10_HOST_DEVICE inline double log1p(double x) { return ::log1p(x); }
C10_HOST_DEVICE inline float expm1(float x) { return ::expm1f(x); }
C10_HOST_DEVICE inline double expm1(double x) { return ::expm1(x); }
C10_HOST_DEVICE inline float sqrt(float x) { return ::sqrtf(x); }
C10_HOST_DEVICE inline double sqrt(double x) { return ::sqrt(x); }
C10_HOST_DEVICE inline float abs(float x) { return ::fabsf(x); }
C10_HOST_DEVICE inline double abs(double x) { return ::fabs(x); }
// NaN-propagating max/min, as torch's clamp_min/maximum.
template <class T> C10_HOST_DEVICE inline T max(T a, T b) { return (a != a || a > b) ? a : b; }
template <class T> C10_HOST_DEVICE inline T min(T a, T b) { return (a != a || a < b) ? a : b; }
template <class T> C10_HOST_DEVICE inline T where(bool m, T a, T b) { return m ? a : b; }
template <class T> C10_HOST_DEVICE inline bool isnan(T x) { return x != x; }
// exp for arguments <= 0 where a few ulp do not matter (the row-wise softmax): __expf on the device,
// Vectorized::exp_u20 (<= 20 ulp on float) on the CPU lanes, std::exp on host scalars.
#ifdef __CUDA_ARCH__
__device__ inline float fast_exp(float x) { return __expf(x); }
#else
inline float fast_exp(float x) { return ::expf(x); }
#endif
C10_HOST_DEVICE inline double fast_exp(double x) { return ::exp(x); }
// Whether a <= b (every lane; false where either is NaN).
template <class T> C10_HOST_DEVICE inline bool all_le(T a, T b) { return a <= b; }
// Where x is finite, x; else 0 (for reference points of shifted sums).
template <class T> C10_HOST_DEVICE inline T finite_or_zero(T x) { return (x - x == T(0)) ? x : T(0); }
// -1, 0 or 1; 0 for NaN, as torch's sign/sgn on the CPU (the L1 gradient at a zero difference is 0).
template <class T> C10_HOST_DEVICE inline T sign(T x) { return T(x > T(0)) - T(x < T(0)); }

#ifdef LOSSEXT_VMATH_VEC
using at::vec::Vectorized;
template <class T> inline Vectorized<T> exp(const Vectorized<T>& x) { return x.exp(); }
template <class T> inline Vectorized<T> log(const Vectorized<T>& x) { return x.log(); }
template <class T> inline Vectorized<T> log1p(const Vectorized<T>& x) { return x.log1p(); }
template <class T> inline Vectorized<T> expm1(const Vectorized<T>& x) { return x.expm1(); }
template <class T> inline Vectorized<T> sqrt(const Vectorized<T>& x) { return x.sqrt(); }
template <class T> inline Vectorized<T> abs(const Vectorized<T>& x) { return x.abs(); }
template <class T> inline Vectorized<T> max(const Vectorized<T>& a, const Vectorized<T>& b) { return at::vec::maximum(a, b); }
template <class T> inline Vectorized<T> min(const Vectorized<T>& a, const Vectorized<T>& b) { return at::vec::minimum(a, b); }
template <class T>
inline Vectorized<T> where(const Vectorized<T>& m, const Vectorized<T>& a, const Vectorized<T>& b) {
  return Vectorized<T>::blendv(b, a, m);
}
template <class T> inline Vectorized<T> isnan(const Vectorized<T>& x) { return x.isnan(); }
template <class T> inline Vectorized<T> fast_exp(const Vectorized<T>& x) { return x.exp_u20(); }
template <class T> inline bool all_le(const Vectorized<T>& a, const Vectorized<T>& b) { return (a <= b).zero_mask() == 0; }
template <class T>
inline Vectorized<T> finite_or_zero(const Vectorized<T>& x) {
  const Vectorized<T> zero(0);
  return Vectorized<T>::blendv(zero, x, (x - x) == zero);
}
template <class T>
inline Vectorized<T> sign(const Vectorized<T>& x) {
  const Vectorized<T> zero(0), one(1);
  return Vectorized<T>::blendv(zero, one, x > zero) - Vectorized<T>::blendv(zero, one, x < zero);
}
#endif

}  // namespace lossext::vm
