// Element loads and stores of a runtime dtype, for the drivers' operands whose dtype is not the
// computation's (lossext/pointwise.h: PointwiseArgs::in_dtype / out_dtype). Host and device.
//
// Loads read any dtype torch promotes into a loss (the four floating ones, the integer ones and
// bool) and convert to the math type M exactly as `static_cast` (torch's promotion: an int64
// target beside a float32 input is that value rounded to float). Stores write a floating dtype
// (losses and gradients are never integer).
#pragma once

#include <c10/core/ScalarType.h>
#include <c10/macros/Macros.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>

namespace lossext {

template <class M>
C10_HOST_DEVICE inline M load_as(const void* p, int64_t i, c10::ScalarType st) {
  switch (st) {
    case c10::ScalarType::Float: return static_cast<M>(static_cast<const float*>(p)[i]);
    case c10::ScalarType::Double: return static_cast<M>(static_cast<const double*>(p)[i]);
    case c10::ScalarType::Half: return static_cast<M>(static_cast<float>(static_cast<const c10::Half*>(p)[i]));
    case c10::ScalarType::BFloat16:
      return static_cast<M>(static_cast<float>(static_cast<const c10::BFloat16*>(p)[i]));
    case c10::ScalarType::Long: return static_cast<M>(static_cast<const int64_t*>(p)[i]);
    case c10::ScalarType::Int: return static_cast<M>(static_cast<const int32_t*>(p)[i]);
    case c10::ScalarType::Short: return static_cast<M>(static_cast<const int16_t*>(p)[i]);
    case c10::ScalarType::Char: return static_cast<M>(static_cast<const int8_t*>(p)[i]);
    case c10::ScalarType::Byte: return static_cast<M>(static_cast<const uint8_t*>(p)[i]);
    case c10::ScalarType::Bool: return static_cast<M>(static_cast<const bool*>(p)[i] ? 1 : 0);
    default: return static_cast<M>(0);  // the host rejects every other dtype before a driver runs
  }
}

template <class M>
C10_HOST_DEVICE inline void store_as(void* p, int64_t i, c10::ScalarType st, M v) {
  switch (st) {
    case c10::ScalarType::Float: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case c10::ScalarType::Double: static_cast<double*>(p)[i] = static_cast<double>(v); break;
    case c10::ScalarType::Half: static_cast<c10::Half*>(p)[i] = static_cast<c10::Half>(static_cast<float>(v)); break;
    case c10::ScalarType::BFloat16:
      static_cast<c10::BFloat16*>(p)[i] = static_cast<c10::BFloat16>(static_cast<float>(v));
      break;
    default: break;  // the host allocates floating outputs only
  }
}

}  // namespace lossext
