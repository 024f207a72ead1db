"""PyTorch's side of `make bench-train`: the seed model's training step, eager and compiled,
timed the way apps/bench_train times ours, in the same session on the same GPU.

The model is the original run's (its PyTorch script, restated here in brief): input Linear
5->64; 4 pre-norm blocks of causal attention (8 heads of 8, rotary on the whole head, dropout
0.05, biases) and a GELU(tanh) MLP 64->256->64 behind RMSNorms; Linear 64->5.
Step: bf16 autocast forward, weighted smooth L1 (beta 0.01), backward, clip 0.5, fused AdamW.
Prints one JSON line per measurement.
"""
import json
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def rotary(x, T, D):
    inv = 1.0 / (10000 ** (torch.arange(0, D, 2, device=x.device).float() / D))
    angles = torch.outer(torch.arange(T, device=x.device).float(), inv)
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()
    first, second = x.chunk(2, -1)
    return x * cos.to(x.dtype) + torch.cat([-second, first], -1) * sin.to(x.dtype)


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.Wqkv = nn.Linear(d, 3 * d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.Wqkv(x).view(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k = rotary(q, T, C // self.heads), rotary(k, T, C // self.heads)
        p = 0.05 if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.norm1, self.norm2 = nn.RMSNorm(d, eps=1e-5), nn.RMSNorm(d, eps=1e-5)
        self.attn = Attention(d, heads)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x)), approximate="tanh"))


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_proj = nn.Linear(5, 64)
        self.layers = nn.ModuleList([Block(64, 8) for _ in range(4)])
        self.fc_out = nn.Linear(64, 5)

    def forward(self, x):
        x = self.input_proj(x)
        for layer in self.layers:
            x = layer(x)
        return self.fc_out(x)


def median_ms(fn, iters=30, warmup=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def main():
    batches = [int(b) for b in sys.argv[1:]] or [16, 32, 64]
    T = 2048
    weights = torch.tensor([1, 1, 1, 1, 0.25], device="cuda")
    for mode in ["eager", "compile"]:
        for B in batches:
            torch.manual_seed(0)
            model = Model().cuda()
            assert sum(p.numel() for p in model.parameters()) == 200133
            opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=1e-3, fused=True)
            run = torch.compile(model) if mode == "compile" else model
            x = torch.randn(B, T, 5, device="cuda")

            def step():
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    pred = run(x)[:, :-1]
                loss = (F.smooth_l1_loss(pred.float(), x[:, 1:], reduction="none", beta=0.01)
                        * weights).sum(-1).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
                opt.step()

            torch.cuda.reset_peak_memory_stats()
            with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
                ms = median_ms(step, 30, 10 if mode == "eager" else 15)
            print(json.dumps(dict(impl="torch-" + mode, mode="train", B=B, T=T, ms_step=round(ms, 3),
                                  tok_per_s=round(B * T / ms * 1e3),
                                  peak_MiB=round(torch.cuda.max_memory_allocated() / 2**20))),
                  flush=True)
            if B == 32:
                model.eval()

                def infer():
                    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                        return run(x)

                with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
                    ms = median_ms(infer, 30, 15)
                print(json.dumps(dict(impl="torch-" + mode, mode="inference", B=B, T=T,
                                      ms_fwd=round(ms, 3))), flush=True)


if __name__ == "__main__":
    main()
