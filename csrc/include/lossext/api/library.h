// What a program linking liblossext.so sees of the library itself (public; lossext/lossext.h).
#pragma once

// Exported even from a build with -fvisibility=hidden (Linux and macOS builds only).
#define LOSSEXT_API __attribute__((visibility("default")))

namespace lossext {

// The CPU instruction sets this build holds loops for, e.g. "DEFAULT,AVX2,AVX512" (see setup.py).
LOSSEXT_API const char* built_isas();

namespace detail {
// Every translation unit that includes this header references the library: a linker run with
// --as-needed (the default of some distributions) keeps liblossext.so as a dependency of the
// program, so its static initialisers register the ops even where the program reaches them only
// through the dispatcher.
inline const char* const linked_isas = ::lossext::built_isas();
}  // namespace detail

}  // namespace lossext
