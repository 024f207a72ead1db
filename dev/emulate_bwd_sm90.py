#!/usr/bin/env python3
"""CPU model of cuda/flash_attention_bwd_sm90.cu (run: python3 dev/emulate_bwd_sm90.py; needs
numpy, e.g. apt-get install python3-numpy): the swizzled tile copies, the descriptors the kernel
builds, the hardware's reading of them (K-major and MN-major 128B-swizzled operands, A and B,
the transpose bits of dQ's A = dS and B = K, dQ's D / 2 column halves), the accumulator and
A-from-registers fragment layouts, the masking, the dS^T stores into shared memory and the
shuffled 4-float dQ atomics, thread by thread, for every CTA. Checks dK, dV and dQ against a
float64 reference. Like dev/emulate_fwd_sm90.py (whose helpers it reuses) it catches
inconsistencies between what the kernel writes and what it tells the hardware to read, not
misunderstandings of the hardware itself, nor races. Every formula is transcribed from the .cu
(Traits = Sm90BwdTraits); keep them in step."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emulate_fwd_sm90 import (Smem, a_regs_to_matrix, bf16, decode, desc_add, ex2,  # noqa: E402
                              load_tile_sw128, make_desc, matrix_to_acc, read_kmajor, read_mnmajor,
                              swz128)

RNG = np.random.default_rng(1)


class Traits:
    def __init__(self, D):
        self.D = D
        self.kWarpgroups = 2
        self.kThreads = 256
        self.kBlockN = 128
        self.kBlockM = 64
        self.kRowBytes = 128
        self.kAtomBytes = 1024
        self.kStages = 2
        self.kKVBytes = self.kBlockN * D * 2
        self.kQBytes = self.kBlockM * D * 2
        self.kDsBytes = self.kBlockN * self.kBlockM * 2
        self.kStatFloats = 2 * self.kBlockM
        self.kSmemBytes = 2 * self.kKVBytes + 2 * self.kStages * self.kQBytes + self.kDsBytes + \
            self.kStages * self.kStatFloats * 4 + 1024
        self.kScoreTiles = self.kBlockM // 8
        self.kGradTiles = D // 8
        self.kPSteps = self.kBlockM // 16
        self.kDqN = D // 2
        self.kDqTiles = self.kDqN // 8
        self.kDqSteps = self.kBlockN // 16


def write_u32(sm, addr, pair):  # st.shared.b32 of two 16-bit elements (low half first)
    assert addr % 4 == 0
    sm.v[addr // 2: addr // 2 + 2] = pair


def read_a_mnmajor(sm, desc, m):  # A (m x 16) stored MN-major: the B formula with m for n
    return read_mnmajor(sm, desc, m).T


def c_to_a(c0, c1):  # fa::c_to_a, rounded to bf16
    return [bf16(c0[0:2]), bf16(c0[2:4]), bf16(c1[0:2]), bf16(c1[2:4])]


def run_cta(tr, P, q, k, v, dout, ws_delta, ws_lse2, dk, dv, dq_acc, bx, b, h, smem_base):
    D, T, H, causal = tr.D, P['T'], P['H'], P['causal']
    n0 = bx * tr.kBlockN
    m_begin = n0 if causal else 0
    n_tiles = (T - m_begin + tr.kBlockM - 1) // tr.kBlockM
    sm = Smem(smem_base + tr.kSmemBytes + 4096)
    sK = (smem_base + 1023) & ~1023
    sV = sK + tr.kKVBytes
    sQ = sV + tr.kKVBytes
    sdO = sQ + tr.kStages * tr.kQBytes
    sDs = sdO + tr.kStages * tr.kQBytes
    sStats = sDs + tr.kDsBytes
    assert sStats + tr.kStages * tr.kStatFloats * 4 <= smem_base + tr.kSmemBytes
    stats = np.full(tr.kStages * tr.kStatFloats, np.nan, np.float32)  # sStats as floats
    bh = b * H + h
    load_tile_sw128(sm, tr.kBlockN, D, tr.kThreads, sK, lambda r: k[b, r, h], n0, T)
    load_tile_sw128(sm, tr.kBlockN, D, tr.kThreads, sV, lambda r: v[b, r, h], n0, T)

    def load_query_tile(i):
        m0, stage = m_begin + i * tr.kBlockM, i % tr.kStages
        load_tile_sw128(sm, tr.kBlockM, D, tr.kThreads, sQ + stage * tr.kQBytes, lambda r: q[b, r, h], m0, T)
        load_tile_sw128(sm, tr.kBlockM, D, tr.kThreads, sdO + stage * tr.kQBytes, lambda r: dout[b, r, h], m0, T)
        for t in range(tr.kStatFloats):
            row = m0 + t % tr.kBlockM
            src = (ws_lse2 if t < tr.kBlockM else ws_delta)[bh, row] if row < T else 0.0
            stats[stage * tr.kStatFloats + t] = src

    kv_desc = lambda tile, w: make_desc(tile + w * 64 * tr.kRowBytes, 16, tr.kAtomBytes, 1)
    qk_desc = lambda tiles, i: make_desc(tiles + (i % 2) * tr.kQBytes, 16, tr.kAtomBytes, 1)
    qmn_desc = lambda tiles, i: make_desc(tiles + (i % 2) * tr.kQBytes, tr.kBlockM * tr.kRowBytes, tr.kAtomBytes, 1)
    ds_desc = make_desc(sDs, tr.kBlockN * tr.kRowBytes, tr.kAtomBytes, 1)

    def k_half_desc(w):
        col = w * tr.kDqN
        off = (col // 64) * tr.kBlockN * tr.kRowBytes + (col % 64) * 2
        return make_desc(sK + off, tr.kBlockN * tr.kRowBytes, tr.kAtomBytes, 1)

    def transposed_scores(a_desc, b_desc):  # issue_transposed_scores: 64 x 64
        acc = np.zeros((64, tr.kBlockM))
        for ks in range(D // 16):
            a_off = (ks // 4) * tr.kBlockN * tr.kRowBytes + (ks % 4) * 32
            b_off = (ks // 4) * tr.kBlockM * tr.kRowBytes + (ks % 4) * 32
            A = read_kmajor(sm, desc_add(a_desc, a_off), 64).astype(np.float64)
            Bt = read_kmajor(sm, desc_add(b_desc, b_off), tr.kBlockM).astype(np.float64)
            acc += A @ Bt.T
        return matrix_to_acc(acc.astype(np.float32), tr.kBlockM)

    def grad(acc, regs, b_desc):  # issue_grad: acc (frag, 64 x D) += A (regs) B (MN-major)
        M = np.zeros((64, D))
        for ks in range(tr.kPSteps):
            A = a_regs_to_matrix([regs[th][ks] for th in range(128)]).astype(np.float64)
            Bm = read_mnmajor(sm, desc_add(b_desc, ks * 16 * tr.kRowBytes), D).astype(np.float64)
            M += A @ Bm
        return acc + matrix_to_acc(M.astype(np.float32), D)

    def dq_product(w):  # issue_dq: 64 queries x kDqN
        acc = np.zeros((64, tr.kDqN))
        for ks in range(tr.kDqSteps):
            off = ks * 16 * tr.kRowBytes
            A = read_a_mnmajor(sm, desc_add(ds_desc, off), 64).astype(np.float64)
            Bm = read_mnmajor(sm, desc_add(k_half_desc(w), off), tr.kDqN).astype(np.float64)
            acc += A @ Bm
        return matrix_to_acc(acc.astype(np.float32), tr.kDqN)

    scale_log2 = np.float32(P['scale'] * 1.4426950408889634)
    st = [dict(dk=np.zeros((128, D // 2), np.float32), dv=np.zeros((128, D // 2), np.float32))
          for _ in range(2)]
    load_query_tile(0)
    for i in range(n_tiles):
        if i + 1 < n_tiles:
            load_query_tile(i + 1)  # (the kernel issues it after the barrier; the stage is free)
        m0, stage = m_begin + i * tr.kBlockM, i % 2
        sts = stats[stage * tr.kStatFloats:(stage + 1) * tr.kStatFloats]
        sm.v[sDs // 2: (sDs + tr.kDsBytes) // 2] = np.nan  # stale dS^T must not be read
        for w in range(2):
            s = transposed_scores(kv_desc(sK, w), qk_desc(sQ, i))
            dp = transposed_scores(kv_desc(sV, w), qk_desc(sdO, i))
            pa, dsa = [], []
            for th in range(128):
                warp_row, lane = 16 * (th // 32), th % 32
                key0 = n0 + 64 * w + warp_row
                g, t = lane // 4, lane % 4
                if m0 + tr.kBlockM > T or key0 + 15 >= T or (causal and m0 < key0 + 15):
                    for nt in range(tr.kScoreTiles):
                        for e in range(4):
                            key, query = key0 + g + 8 * (e // 2), m0 + 8 * nt + 2 * t + e % 2
                            if query >= T or key >= T or (causal and query < key):
                                s[th][4 * nt + e] = -np.inf
                for nt in range(tr.kScoreTiles):
                    lse = sts[8 * nt + 2 * t: 8 * nt + 2 * t + 2]
                    delta = sts[tr.kBlockM + 8 * nt + 2 * t: tr.kBlockM + 8 * nt + 2 * t + 2]
                    for e in range(4):
                        x = 4 * nt + e
                        s[th][x] = ex2(np.float32(s[th][x]) * scale_log2 - lse[e % 2])
                        dp[th][x] = np.float32(s[th][x] * (dp[th][x] - delta[e % 2]))
                tiles = lambda a, nt: a[th][4 * nt:4 * nt + 4]
                pa.append([c_to_a(tiles(s, 2 * ks), tiles(s, 2 * ks + 1)) for ks in range(tr.kPSteps)])
                dsa.append([c_to_a(tiles(dp, 2 * ks), tiles(dp, 2 * ks + 1)) for ks in range(tr.kPSteps)])
                row0 = key0 - n0
                for ks in range(tr.kPSteps):  # grad_scores' stores
                    for j in range(4):
                        row, nt = row0 + g + 8 * (j % 2), 2 * ks + j // 2
                        write_u32(sm, sDs + row * tr.kRowBytes + ((nt ^ g) * 16) + 4 * t, dsa[th][ks][j])
            st[w]['pa'], st[w]['dsa'] = pa, dsa
        for w in range(2):  # after the barrier: dQ, dV, dK
            dqf = dq_product(w)
            st[w]['dv'] = grad(st[w]['dv'], st[w]['pa'], qmn_desc(sdO, i))
            st[w]['dk'] = grad(st[w]['dk'], st[w]['dsa'], qmn_desc(sQ, i))
            for th in range(128):  # add_dq
                warp_row, lane = 16 * (th // 32), th % 32
                g, t = lane // 4, lane % 4
                odd = t % 2 == 1
                row = m0 + warp_row + g + (8 if odd else 0)
                partner = (th // 32) * 32 + (lane ^ 1)
                for j in range(tr.kDqTiles):
                    d = dqf[th][4 * j:4 * j + 4]
                    pd = dqf[partner][4 * j:4 * j + 4]
                    x, y = (pd[2], pd[3]) if odd else (pd[0], pd[1])  # the even partner sends row g + 8
                    vals = [x, y, d[2], d[3]] if odd else [d[0], d[1], x, y]
                    col = w * tr.kDqN + 2 * (t & ~1) + 8 * j
                    if row < T:
                        assert col % 4 == 0
                        dq_acc[b, row, h, col:col + 4] += np.float32(P['scale']) * np.array(vals, np.float32)
    for w in range(2):  # store_grad
        for th in range(128):
            warp_row, lane = 16 * (th // 32), th % 32
            g, t = lane // 4, lane % 4
            key0 = n0 + 64 * w + warp_row
            for r in range(2):
                row = key0 + g + 8 * r
                if row >= T:
                    continue
                for dt in range(D // 8):
                    for e in range(2):
                        dk[b, row, h, dt * 8 + 2 * t + e] = bf16(st[w]['dk'][th][4 * dt + 2 * r + e] * P['scale'])
                        dv[b, row, h, dt * 8 + 2 * t + e] = bf16(st[w]['dv'][th][4 * dt + 2 * r + e])


def reference(q, k, v, dout, causal, scale):
    B, T, H, D = q.shape
    out = np.zeros((B, T, H, D))
    lse = np.zeros((B, H, T))
    g = {n: np.zeros((B, T, H, D)) for n in ('dq', 'dk', 'dv')}
    for b in range(B):
        for h in range(H):
            Q, K, V, dO = (x[b, :, h].astype(np.float64) for x in (q, k, v, dout))
            s = Q @ K.T * scale
            if causal:
                s = np.where(np.tril(np.ones((T, T), bool)), s, -np.inf)
            mx = s.max(1, keepdims=True)
            l = np.exp(s - mx).sum(1, keepdims=True)
            p = np.exp(s - mx) / l
            out[b, :, h] = p @ V
            lse[b, h] = (mx + np.log(l))[:, 0]
            dp = dO @ V.T
            ds = p * (dp - (dO * out[b, :, h]).sum(1, keepdims=True))
            g['dv'][b, :, h] = p.T @ dO
            g['dq'][b, :, h] = ds @ K * scale
            g['dk'][b, :, h] = ds.T @ Q * scale
    return out, lse, g


def main(D, T, B, H, causal, smem_base):
    tr = Traits(D)
    q, k, v, dout = (bf16(RNG.standard_normal((B, T, H, D)).astype(np.float32)) for _ in range(4))
    scale = float(np.float32(1.0 / np.sqrt(D)))
    out, lse, ref = reference(q, k, v, dout, causal, scale)
    # The delta kernel's workspace: delta = rowsum(dO * O) on the bf16 O, lse log2 e.
    ws_delta = np.einsum('bthd,bthd->bht', dout.astype(np.float64), bf16(out.astype(np.float32)))
    ws_delta = ws_delta.reshape(B * H, T).astype(np.float32)
    ws_lse2 = (lse * 1.4426950408889634).reshape(B * H, T).astype(np.float32)
    dk = np.full((B, T, H, D), np.nan, np.float32)
    dv = np.full((B, T, H, D), np.nan, np.float32)
    dq_acc = np.zeros((B, T, H, D), np.float32)  # zeroed by the delta kernel
    P = dict(T=T, H=H, causal=causal, scale=scale)
    for bh in range(B * H):
        for bx in range((T + tr.kBlockN - 1) // tr.kBlockN):
            run_cta(tr, P, q, k, v, dout, ws_delta, ws_lse2, dk, dv, dq_acc, bx, bh // H, bh % H, smem_base)
    assert not np.isnan(dk).any() and not np.isnan(dv).any() and not np.isnan(dq_acc).any(), "unwritten or NaN"
    errs = {}
    for name, got in (('dq', dq_acc), ('dk', dk), ('dv', dv)):
        errs[name] = np.linalg.norm(got - ref[name]) / np.linalg.norm(ref[name])
    print(f"D={D} T={T} B={B} H={H} causal={causal}: rel err " + ", ".join(f"{n} {e:.2e}" for n, e in errs.items()))
    assert all(e < 2e-2 for e in errs.values()), "MISMATCH"


if __name__ == "__main__":
    for D, T, B, H, causal in [(64, 200, 1, 1, True), (128, 150, 1, 2, False), (64, 130, 1, 1, False),
                               (128, 300, 1, 1, True), (64, 17, 2, 1, True), (128, 2, 1, 1, False)]:
        main(D, T, B, H, causal, smem_base=16)
