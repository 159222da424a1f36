// Loads and stores between memory of any loss dtype and vectors of its math type
// (float for float16/bfloat16/float32, double for float64). ISA-compiled code only.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <cstdint>
#include <type_traits>

namespace lossext::CPU_CAPABILITY {

using at::vec::Vectorized;

template <class T>
using math_t = at::opmath_type<T>;

template <class T>
constexpr bool is_reduced_v = std::is_same_v<T, c10::Half> || std::is_same_v<T, c10::BFloat16>;

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
