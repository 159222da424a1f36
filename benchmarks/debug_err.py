import sys, torch, lossext
op = torch.ops.lossext.binary_cross_entropy_with_logits.default
d = sys.argv[1]
x = torch.randn(3, 4, device=d)
case = sys.argv[2]
try:
    if case == "value":
        op(x, torch.rand(3, 5, device=d), None, None, 1, [False, False])
    elif case == "bcast":
        op(x, x, torch.rand(7, device=d), None, 1, [False, False])
    elif case == "float":
        op(x.long(), x.long(), None, None, 1, [False, False])
    elif case == "scale":
        torch.ops.lossext.scale_grad(x, torch.randn(2, device=d))
except Exception as e:
    print(case, type(e).__name__, str(e).splitlines()[0])
