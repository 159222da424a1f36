// Loads and stores between memory of any loss dtype and vectors of its math type
// (float for float16/bfloat16/float32, double for float64). ISA-compiled code only.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <cstdint>
#include <type_traits>

// Inlines every call in the function's body (the functor's methods, torch's out-of-line
// Vectorized math such as exp_u20): for loops that call them once a vector.
#if defined(__GNUC__)
#define LOSSEXT_FLATTEN __attribute__((flatten))
#else
#define LOSSEXT_FLATTEN
#endif

namespace lossext::CPU_CAPABILITY {

using at::vec::Vectorized;

template <class T>
using math_t = at::opmath_type<T>;

template <class T>
constexpr bool is_reduced_v = std::is_same_v<T, c10::Half> || std::is_same_v<T, c10::BFloat16>;

// Lanes [w, 2w) of v in lanes [0, w) (w a power of two below the vector size; the other lanes hold
// other lanes of v): one step of a lane-folding tree, in registers. A store and a reload at an
// offset (the portable way) cannot be forwarded from the store and stalls ~20 cycles a step, which
// dominated short rows (10 classes).
template <class M>
inline Vectorized<M> shuffle_down(const Vectorized<M>& v, int64_t w) {
#if defined(CPU_CAPABILITY_AVX512)
  if constexpr (std::is_same_v<M, float>) {
    const __m512 x = v;
    switch (w) {
      case 8: return _mm512_shuffle_f32x4(x, x, 0x4E);  // 128-bit lanes (2, 3, 0, 1)
      case 4: return _mm512_shuffle_f32x4(x, x, 0xB1);  // (1, 0, 3, 2)
      case 2: return _mm512_permute_ps(x, 0x4E);        // within 128 bits: (2, 3, 0, 1)
      case 1: return _mm512_permute_ps(x, 0xB1);        // (1, 0, 3, 2)
    }
  } else if constexpr (std::is_same_v<M, double>) {
    const __m512d x = v;
    switch (w) {
      case 4: return _mm512_shuffle_f64x2(x, x, 0x4E);
      case 2: return _mm512_shuffle_f64x2(x, x, 0xB1);
      case 1: return _mm512_permute_pd(x, 0x55);  // pairs swapped
    }
  }
#elif defined(CPU_CAPABILITY_AVX2)
  if constexpr (std::is_same_v<M, float>) {
    const __m256 x = v;
    switch (w) {
      case 4: return _mm256_permute2f128_ps(x, x, 1);
      case 2: return _mm256_permute_ps(x, 0x4E);
      case 1: return _mm256_permute_ps(x, 0xB1);
    }
  } else if constexpr (std::is_same_v<M, double>) {
    const __m256d x = v;
    switch (w) {
      case 2: return _mm256_permute2f128_pd(x, x, 1);
      case 1: return _mm256_permute_pd(x, 0x5);
    }
  }
#endif
  alignas(64) M buf[2 * Vectorized<M>::size()] = {};
  v.store(buf);
  return Vectorized<M>::loadu(buf + w);
}

// Lanes [0, count) of b, the others of a: V::set's values, without its out-of-line switch over
// count (called once a row, it cost ~3% of a 64x10 row loss).
template <class M>
inline Vectorized<M> vfirst(const Vectorized<M>& a, const Vectorized<M>& b, int64_t count) {
  using V = Vectorized<M>;
  return V::blendv(a, b, V::arange(M(0), M(1)) < V(static_cast<M>(count)));
}

// `count` elements (count <= vector size) from p into a vector of the math type.
template <class T>
inline Vectorized<math_t<T>> vload(const T* p, int64_t count) {
  using V = Vectorized<math_t<T>>;
  if constexpr (is_reduced_v<T>) {
    if (count == V::size()) {
      V out;
      at::vec::load_to_float(p, out);
      return out;
    }
    math_t<T> tmp[V::size()] = {};
    for (int64_t i = 0; i < count; ++i) tmp[i] = static_cast<math_t<T>>(p[i]);
    return V::loadu(tmp);
  } else {
    return count == V::size() ? V::loadu(p) : V::loadu(p, count);
  }
}

template <class T>
inline void vstore(T* p, const Vectorized<math_t<T>>& v, int64_t count) {
  using V = Vectorized<math_t<T>>;
  if constexpr (is_reduced_v<T>) {
    auto r = at::vec::convert_from_float<T>(v, v);  // 2x lanes; the first half holds v
    r.store(p, count);
  } else {
    count == V::size() ? v.store(p) : v.store(p, count);
  }
}

// Horizontal sum of a vector, in double.
template <class T>
inline double hsum(const Vectorized<T>& v) {
  T tmp[Vectorized<T>::size()];
  v.store(tmp);
  double s = 0;
  for (int i = 0; i < Vectorized<T>::size(); ++i) s += tmp[i];
  return s;
}

}  // namespace lossext::CPU_CAPABILITY
