#!/usr/bin/env python3
"""How long a causal attention grid takes under list scheduling, for three CTA orders.

The GPU starts CTAs in linear-index order as slots (SM residency) free up. Under causal
masking the tiles of one head differ in work (the forward's query tile i visits i + 1 key
tiles), so the order decides how long the kernel runs on a tail of late heavy tiles. Model: a
CTA's time is its tile count, every slot runs at the same speed, and each CTA takes the slot
that frees first (cuda/flash_attention_common.cuh, fa::block_tile, explains the grid).

    python3 dev/schedule_model.py                 # the seed shape and the D = 64/128 ones
    python3 dev/schedule_model.py 256 32 660      # heads, tiles a head, resident CTAs
"""
import heapq
import sys


def makespan(works, slots):
    free_at = [0] * slots
    end = 0
    for w in works:
        t = heapq.heappop(free_at) + w
        end = max(end, t)
        heapq.heappush(free_at, t)
    return end


def orders(heads, tiles, group):
    """Work of each CTA in launch order: head-major, and heaviest first in groups of heads."""
    head_major = [tiles - r for _ in range(heads) for r in range(tiles)]
    grouped = [tiles - r for g0 in range(0, heads, group) for r in range(tiles)
               for _ in range(g0, min(heads, g0 + group))]
    return head_major, grouped


def report(name, heads, tiles, slots, group):
    head_major, grouped = orders(heads, tiles, group)
    ideal = sum(head_major) / slots
    a, b = makespan(head_major, slots), makespan(grouped, slots)
    print(f"{name:28s} ideal {ideal:7.1f}  head-major {a:5d} (+{100 * (a / ideal - 1):4.1f}%)"
          f"  grouped by {group:3d} {b:5d} (+{100 * (b / ideal - 1):4.1f}%)")


if __name__ == "__main__":
    if len(sys.argv) == 4:
        h, t, s = map(int, sys.argv[1:])
        report("custom", h, t, s, h)
    else:
        # (name, B * H, tiles a head, CTAs resident on 132 SMs (an H100), heads a group)
        report("D=8 fwd, 64-row tiles", 256, 32, 5 * 132, 256)
        report("D=8 bwd dK/dV, 64 keys", 256, 32, 5 * 132, 256)
        report("D=64 fwd sm90, 192 rows", 256, 11, 132, 32)
        report("D=128 fwd sm90, 128 rows", 128, 16, 132, 16)
