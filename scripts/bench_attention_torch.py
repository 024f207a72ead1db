# PyTorch's scaled_dot_product_attention (flash and cuDNN backends) at the shapes of
# apps/bench_attention.cpp, timed in the same run, printed beside our kernels with the ratios.
#
#   python3 scripts/bench_attention_torch.py [--ours build/attn_bench.json] [--json OUT.json]
#
# Timing as the original run's PyTorch baseline: median of CUDA-event times; the backward is
# (forward + backward) - forward. FLOPs: 4 B H T^2 D / 2 (causal), backward 2.5x.
import argparse, json, os
import torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend


def bench(fn, iters=50, warm=10):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(iters):
        s = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record(); torch.cuda.synchronize()
        ts.append(s.elapsed_time(e))
    ts.sort()
    return ts[len(ts) // 2]


def torch_times(B, H, T, D, backend, p):
    q, k, v = (torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16, requires_grad=True)
               for _ in range(3))
    with sdpa_kernel([backend]):
        f = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        g = torch.randn_like(f())
        fwd = bench(f)
        both = bench(lambda: torch.autograd.grad(f(), (q, k, v), g))
    return fwd, both - fwd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", default="")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    ours = json.load(open(args.ours)) if args.ours and os.path.exists(args.ours) else []
    shapes = [(r["B"], r["H"], r["T"], r["D"], r["dropout"]) for r in ours] or [
        (32, 8, 2048, 8, 0.0), (32, 8, 2048, 8, 0.05), (16, 16, 2048, 64, 0.0),
        (8, 16, 2048, 128, 0.0)]
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}", flush=True)
    hdr = (f"{'B':>3} {'H':>3} {'T':>5} {'D':>4} {'p':>5} | {'impl':<7} {'fwd ms':>8} {'TF/s':>6}"
           f" {'bwd ms':>8} {'TF/s':>6} | fwd x  bwd x (theirs / ours)")
    print(hdr)
    print("-" * len(hdr))
    out = []
    for i, (B, H, T, D, p) in enumerate(shapes):
        fl = 4 * B * H * T * T * D / 2
        mine = ours[i] if ours else None
        if mine:
            print(f"{B:>3} {H:>3} {T:>5} {D:>4} {p:>5.2f} | {'ours':<7} {mine['fwd_ms']:>8.3f}"
                  f" {mine['fwd_TF']:>6.1f} {mine['bwd_ms']:>8.3f} {mine['bwd_TF']:>6.1f} |",
                  flush=True)
        for name, be in [("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)]:
            try:
                fwd, bwd = torch_times(B, H, T, D, be, p)
            except Exception as e:  # a backend may refuse a shape or dropout
                print(f"{'':>25} | {name:<7} unavailable: {str(e)[:60]}", flush=True)
                continue
            r = dict(B=B, H=H, T=T, D=D, dropout=p, impl=name, fwd_ms=round(fwd, 4),
                     bwd_ms=round(bwd, 4), fwd_TF=round(fl / fwd / 1e9, 1),
                     bwd_TF=round(2.5 * fl / bwd / 1e9, 1))
            ratio = ""
            if mine:
                r["fwd_speedup"] = round(fwd / mine["fwd_ms"], 2)
                r["bwd_speedup"] = round(bwd / mine["bwd_ms"], 2)
                ratio = f"{r['fwd_speedup']:>5.2f} {r['bwd_speedup']:>6.2f}"
            print(f"{B:>3} {H:>3} {T:>5} {D:>4} {p:>5.2f} | {name:<7} {fwd:>8.3f} {r['fwd_TF']:>6.1f}"
                  f" {bwd:>8.3f} {r['bwd_TF']:>6.1f} | {ratio}", flush=True)
            out.append(r)
    if args.json:
        json.dump(dict(ours=ours, torch=out, device=torch.cuda.get_device_name(0)),
                  open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
