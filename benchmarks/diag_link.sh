#!/usr/bin/env bash
# Diagnostics for the libstdc++ binding problem seen on the GPU image (temporary).
export PYTHONPATH=$PWD TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16
env | grep -E "^(LDFLAGS|CFLAGS|CXXFLAGS|CC|CXX|LDSHARED)=" || echo "no compiler env vars"
rm -f lossext/*.so
python3 setup.py build_ext --inplace -v > $OUT/build_v.log 2>&1; echo "build rc=$?"
grep -E " -shared " $OUT/build_v.log | tail -1 > $OUT/link.txt
cut -c1-400 $OUT/link.txt; echo; grep -o -E "\-Wl,[^ ]*|-static[^ ]*|-l[a-z_0-9+]*" $OUT/link.txt | sort | uniq -c
readelf -d lossext/_C*.so | grep NEEDED
for o in $(find build -name "*.o"); do nm -C $o 2>/dev/null | grep -q " [TW] std::ostream& std::ostream::_M_insert<long>" && echo "defines _M_insert<long>: $o"; done | head
nm -C lossext/_C*.so | grep "_M_insert<long>"
python3 benchmarks/debug_err.py cuda bcast; echo "as built: rc=$?"
# Re-link without symbolic binding, with g++ and shared libstdc++.
cmd=$(sed -e 's/-Wl,-Bsymbolic-functions//g' -e 's/-Wl,-Bsymbolic//g' -e 's/^x86_64-linux-gnu-gcc /x86_64-linux-gnu-g++ /' $OUT/link.txt)
eval "$cmd" > $OUT/relink.log 2>&1; echo "relink rc=$?"
readelf -d lossext/_C*.so | grep NEEDED | grep -c stdc
python3 benchmarks/debug_err.py cuda bcast; echo "relinked: rc=$?"
