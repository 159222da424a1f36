"""A/B of the pointwise drivers before and after per-operand dtypes: forward+backward (mean) of
mse/l1/smooth_l1 with a float32 and an int64 target, at N=64 and 4M elements, best of 5.

    python benchmarks/operand_dtypes_ab.py <checkout with a built lossext>
"""
import sys, time, torch
sys.path.insert(0, sys.argv[1])
import lossext.functional as LF
torch.manual_seed(0)
res={}
for n in (64, 1<<22):
    x=torch.randn(n, requires_grad=True); t=torch.randn(n); ti=torch.randint(0,3,(n,))
    for name,tt in (("f32",t),("int",ti)):
        for f in ("mse_loss","l1_loss","smooth_l1_loss"):
            fn=getattr(LF,f)
            def step():
                fn(x,tt).backward()
            for _ in range(3): step()
            reps=2000 if n==64 else 20
            ts=[]
            for _ in range(5):
                t0=time.perf_counter()
                for _ in range(reps): step()
                ts.append((time.perf_counter()-t0)/reps)
            print(f"{f} n={n} {name}: {min(ts)*1e6:.1f} us", flush=True)
