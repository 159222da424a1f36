# CMake package of lossext's C++ API: find_package(lossext) next to find_package(Torch), with
#   CMAKE_PREFIX_PATH = torch.utils.cmake_prefix_path;lossext.cmake_prefix_path
# defines the imported target lossext::lossext (liblossext.so, its include dir, and Torch):
#   target_link_libraries(app PRIVATE "${TORCH_LIBRARIES}" lossext::lossext)
# Also sets LOSSEXT_FOUND, LOSSEXT_INCLUDE_DIRS, LOSSEXT_LIBRARY and LOSSEXT_LIBRARIES.
include(CMakeFindDependencyMacro)
if(NOT TARGET torch)
  find_dependency(Torch)
endif()

# This file lives in <lossext package>/share/cmake/lossext.
get_filename_component(_lossext_pkg "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)

# An installed package ships its public headers in <package>/include; a source checkout
# (pip install -e . or setup.py build_ext --inplace) has them in csrc/include.
if(EXISTS "${_lossext_pkg}/include/lossext/lossext.h")
  set(LOSSEXT_INCLUDE_DIRS "${_lossext_pkg}/include")
elseif(EXISTS "${_lossext_pkg}/../csrc/include/lossext/lossext.h")
  get_filename_component(LOSSEXT_INCLUDE_DIRS "${_lossext_pkg}/../csrc/include" ABSOLUTE)
else()
  set(lossext_FOUND FALSE)
  set(lossext_NOT_FOUND_MESSAGE "lossext: no lossext/lossext.h under ${_lossext_pkg}/include")
  return()
endif()

find_library(LOSSEXT_LIBRARY NAMES lossext PATHS "${_lossext_pkg}/lib" NO_DEFAULT_PATH)
if(NOT LOSSEXT_LIBRARY)
  set(lossext_FOUND FALSE)
  set(lossext_NOT_FOUND_MESSAGE
      "lossext: liblossext not found in ${_lossext_pkg}/lib (build it: pip install --no-build-isolation -e .)")
  return()
endif()

if(NOT TARGET lossext::lossext)
  add_library(lossext::lossext SHARED IMPORTED)
  set_target_properties(lossext::lossext PROPERTIES
    IMPORTED_LOCATION "${LOSSEXT_LIBRARY}"
    IMPORTED_SONAME "liblossext.so"
    INTERFACE_INCLUDE_DIRECTORIES "${LOSSEXT_INCLUDE_DIRS}"
    # No --no-as-needed needed: every file including lossext/lossext.h references the library
    # (lossext/api/library.h), so a linker run with --as-needed keeps it and its static
    # initialisers register the ops.
    INTERFACE_LINK_LIBRARIES torch)
endif()

set(LOSSEXT_LIBRARIES lossext::lossext)
set(LOSSEXT_FOUND TRUE)
unset(_lossext_pkg)
