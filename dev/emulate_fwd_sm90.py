#!/usr/bin/env python3
"""CPU model of cuda/flash_attention_fwd_sm90.cu (run: python3 dev/emulate_fwd_sm90.py; needs
numpy, e.g. apt-get install python3-numpy): the smem writes (load_tile_sw128), the
descriptors the kernel builds, the hardware's reading of them (canonical 128B-swizzled K-major /
MN-major layouts, as CUTLASS and ThunderKittens describe them), the register fragment layouts of
wgmma (accumulator, A from registers), and the kernel's softmax/mask/store, thread by thread.
Checks the result against a float64 reference. It catches inconsistencies between what the
kernel writes and what it tells the hardware to read (offsets, LBO/SBO, swizzle phase, fragment
order), not misunderstandings of the hardware itself, nor races. Keep it in step with the kernel:
every formula below is transcribed from the .cu (Traits = Sm90FwdTraits)."""
import sys
import numpy as np

RNG = np.random.default_rng(0)


def bf16(x):
    x = np.atleast_1d(np.asarray(x, dtype=np.float32))
    b = x.view(np.uint32).astype(np.uint64)
    s16, one, r = np.uint64(16), np.uint64(1), np.uint64(0x7FFF)
    b = ((b + r + ((b >> s16) & one)) >> s16) << s16
    y = b.astype(np.uint32).view(np.float32)
    return y if y.size > 1 else y[0]


def make_desc(addr, lbo, sbo, swz):
    return ((addr & 0x3FFFF) >> 4) | (((lbo >> 4) & 0x3FFF) << 16) | (((sbo >> 4) & 0x3FFF) << 32) | (swz << 62)


def desc_add(d, nbytes):
    return d + (nbytes >> 4)


def decode(d):
    return ((d & 0x3FFF) << 4, ((d >> 16) & 0x3FFF) << 4, ((d >> 32) & 0x3FFF) << 4, d >> 62)


def swz128(addr):
    return addr ^ (((addr >> 7) & 7) << 4)


class Smem:
    def __init__(self, nbytes):
        self.v = np.full(nbytes // 2, np.nan, dtype=np.float32)  # unwritten = NaN

    def write16(self, addr, vals):  # 16 bytes = 8 elements
        assert addr % 16 == 0
        self.v[addr // 2: addr // 2 + 8] = vals

    def read(self, addr):
        assert addr % 2 == 0
        return self.v[addr // 2]


def read_kmajor(sm, desc, rows):  # rows x 16 matrix, element (mn, k)
    start, lbo, sbo, swz = decode(desc)
    assert swz == 1
    out = np.empty((rows, 16), np.float32)
    for mn in range(rows):
        for k in range(16):
            out[mn, k] = sm.read(swz128(start + (mn // 8) * sbo + (mn % 8) * 128 + k * 2))
    return out


def read_mnmajor(sm, desc, n):  # 16 x n matrix, element (k, n)
    start, lbo, sbo, swz = decode(desc)
    assert swz == 1
    out = np.empty((16, n), np.float32)
    for k in range(16):
        for j in range(n):
            out[k, j] = sm.read(swz128(start + (k // 8) * sbo + (k % 8) * 128 + (j // 64) * lbo + (j % 64) * 2))
    return out


# ---- register layouts (per warpgroup: thread = 32 v + lane) ---------------------------------
def acc_to_matrix(frag, n):  # frag[thread][n/2] -> 64 x n
    m = np.zeros((64, n), np.float32)
    for th in range(128):
        v, lane = th // 32, th % 32
        g, t = lane // 4, lane % 4
        for r in range(n // 2):
            m[16 * v + g + 8 * ((r % 4) // 2), 8 * (r // 4) + 2 * t + r % 2] = frag[th][r]
    return m


def matrix_to_acc(m, n):
    frag = np.zeros((128, n // 2), np.float32)
    for th in range(128):
        v, lane = th // 32, th % 32
        g, t = lane // 4, lane % 4
        for r in range(n // 2):
            frag[th][r] = m[16 * v + g + 8 * ((r % 4) // 2), 8 * (r // 4) + 2 * t + r % 2]
    return frag


def a_regs_to_matrix(a):  # a[thread][4][2] (lo, hi halves) -> 64 x 16
    m = np.full((64, 16), np.nan, np.float32)
    for th in range(128):
        v, lane = th // 32, th % 32
        g, t = lane // 4, lane % 4
        r0 = 16 * v + g
        m[r0, 2 * t:2 * t + 2] = a[th][0]
        m[r0 + 8, 2 * t:2 * t + 2] = a[th][1]
        m[r0, 2 * t + 8:2 * t + 10] = a[th][2]
        m[r0 + 8, 2 * t + 8:2 * t + 10] = a[th][3]
    assert not np.isnan(m).any()
    return m


# ---- the kernel -------------------------------------------------------------------------------
class Traits:
    def __init__(self, D, warpgroups=2):
        self.D = D
        self.kWarpgroups = warpgroups
        self.kThreads = 128 * self.kWarpgroups
        self.kBlockM = 64 * self.kWarpgroups
        self.kBlockN = 128
        self.kRowBytes = 128
        self.kAtomBytes = 1024
        self.kStages = 2
        self.kQBytes = self.kBlockM * D * 2
        self.kKVBytes = self.kBlockN * D * 2
        self.kSmemBytes = self.kQBytes + 2 * self.kStages * self.kKVBytes + 1024
        self.kScoreTiles = self.kBlockN // 8
        self.kOutTiles = D // 8
        self.kPSteps = self.kBlockN // 16


def load_tile_sw128(sm, ROWS, D, THREADS, dst, head, row0, T):
    """head(row) -> the D elements of that row (global)"""
    kChunks, kTotal = D // 8, ROWS * (D // 8)
    kRowStep = THREADS // kChunks
    for tid in range(THREADS):
        c = tid % kChunks
        r_first = tid // kChunks
        col = (c // 8) * ROWS * 128 + ((c % 8) ^ (r_first % 8)) * 16
        for i in range((kTotal + THREADS - 1) // THREADS):
            r = r_first + i * kRowStep
            if kTotal % THREADS != 0 and r >= ROWS:
                break
            valid = row0 + r < T
            vals = head(row0 + r)[c * 8:c * 8 + 8] if valid else np.zeros(8, np.float32)
            sm.write16(dst + col + r * 128, vals)


def ex2(x):
    with np.errstate(over='ignore'):
        return np.float32(np.exp2(np.float32(x)))


def run_cta(tr, P, q, k, v, out, lse, m_block, b, h, smem_base):
    D, T = tr.D, P['T']
    m0 = m_block * tr.kBlockM
    n_end = min(T, m0 + tr.kBlockM) if P['causal'] else T
    n_tiles = (n_end + tr.kBlockN - 1) // tr.kBlockN
    sm = Smem(smem_base + tr.kSmemBytes + 4096)
    sQ = (smem_base + 1023) & ~1023
    sK = sQ + tr.kQBytes
    sV = sK + tr.kStages * tr.kKVBytes
    assert sV + tr.kStages * tr.kKVBytes <= smem_base + tr.kSmemBytes
    qrow = lambda r: q[b, r, h]
    krow = lambda r: k[b, r, h]
    vrow = lambda r: v[b, r, h]
    load_k = lambda j: load_tile_sw128(sm, tr.kBlockN, D, tr.kThreads, sK + (j % 2) * tr.kKVBytes, krow, j * tr.kBlockN, T)
    load_v = lambda j: load_tile_sw128(sm, tr.kBlockN, D, tr.kThreads, sV + (j % 2) * tr.kKVBytes, vrow, j * tr.kBlockN, T)
    k_desc = lambda j: make_desc(sK + (j % 2) * tr.kKVBytes, 16, tr.kAtomBytes, 1)
    v_desc = lambda j: make_desc(sV + (j % 2) * tr.kKVBytes, tr.kBlockN * tr.kRowBytes, tr.kAtomBytes, 1)
    load_tile_sw128(sm, tr.kBlockM, D, tr.kThreads, sQ, qrow, m0, T)
    load_k(0)
    if n_tiles > 1:
        load_k(1)
    load_v(0)
    scale_log2 = np.float32(P['scale'] * 1.4426950408889634)

    # per warpgroup state, per thread
    W = tr.kWarpgroups
    st = []
    for w in range(W):
        st.append(dict(s=np.zeros((128, tr.kBlockN // 2), np.float32), o=np.zeros((128, D // 2), np.float32),
                       m=np.full((128, 2), -np.inf, np.float32), l=np.zeros((128, 2), np.float32),
                       alpha=np.zeros((128, 2), np.float32), pa=None))

    def issue_scores(w, j):
        qd = make_desc(sQ + w * 64 * tr.kRowBytes, 16, tr.kAtomBytes, 1)
        kd = k_desc(j)
        acc = np.zeros((64, tr.kBlockN), np.float32)
        for ks in range(D // 16):
            q_off = (ks // 4) * tr.kBlockM * tr.kRowBytes + (ks % 4) * 32
            k_off = (ks // 4) * tr.kBlockN * tr.kRowBytes + (ks % 4) * 32
            if ks == 0:
                q_off = k_off = 0
            A = read_kmajor(sm, desc_add(qd, q_off), 64)
            Bt = read_kmajor(sm, desc_add(kd, k_off), tr.kBlockN)  # (n, k)
            acc = acc + A.astype(np.float64) @ Bt.T.astype(np.float64)  # scale-d 0 on ks 0
        st[w]['s'] = matrix_to_acc(acc.astype(np.float32), tr.kBlockN)

    def issue_pv(w, j):
        vd = v_desc(j)
        O = acc_to_matrix(st[w]['o'], D).astype(np.float64)
        for ks in range(tr.kPSteps):
            A = a_regs_to_matrix([st[w]['pa'][th][ks] for th in range(128)])
            Bm = read_mnmajor(sm, desc_add(vd, ks * 16 * tr.kRowBytes), D)
            O = O + A.astype(np.float64) @ Bm.astype(np.float64)
        st[w]['o'] = matrix_to_acc(O.astype(np.float32), D)

    def scores_to_p(w, j):
        n0 = j * tr.kBlockN
        s = st[w]['s']
        for th in range(128):
            warp, lane = th // 32, th % 32
            r0 = m0 + 64 * w + 16 * warp
            g, t = lane // 4, lane % 4
            if n0 + tr.kBlockN > T or (P['causal'] and n0 + tr.kBlockN - 1 > r0):
                for nt in range(tr.kScoreTiles):
                    for i in range(4):
                        row, col = r0 + g + 8 * (i // 2), n0 + 8 * nt + 2 * t + (i % 2)
                        if col >= T or (P['causal'] and col > row):
                            s[th][4 * nt + i] = -np.inf
        # softmax: row max over the thread's 32 columns, then over the quad (4 lanes of a row)
        for r in range(2):
            mx_thread = np.array([max(s[th][4 * nt + 2 * r + e] for nt in range(tr.kScoreTiles) for e in range(2)) for th in range(128)], np.float32)
            mx = np.array([max(mx_thread[(th // 4) * 4 + qq] for qq in range(4)) for th in range(128)], np.float32)
            for th in range(128):
                m_old = st[w]['m'][th][r]
                m_new = max(m_old, np.float32(mx[th] * scale_log2))
                m_use = np.float32(0) if m_new == -np.inf else m_new
                alpha = ex2(np.float32(m_old - m_use))
                st[w]['alpha'][th][r] = alpha
                st[w]['m'][th][r] = m_new
                tot = np.float32(0)
                for nt in range(tr.kScoreTiles):
                    for e in range(2):
                        idx = 4 * nt + 2 * r + e
                        s[th][idx] = ex2(np.float32(s[th][idx]) * scale_log2 - m_use)
                        tot += s[th][idx]
                st[w]['l'][th][r] = st[w]['l'][th][r] * alpha + tot

    def finish_pv(w):
        o = st[w]['o']
        for th in range(128):
            for dt in range(tr.kOutTiles):
                o[th][4 * dt + 0] *= st[w]['alpha'][th][0]
                o[th][4 * dt + 1] *= st[w]['alpha'][th][0]
                o[th][4 * dt + 2] *= st[w]['alpha'][th][1]
                o[th][4 * dt + 3] *= st[w]['alpha'][th][1]
        s = st[w]['s']
        pa = []
        for th in range(128):
            regs = []
            for ks in range(tr.kPSteps):
                c0, c1 = s[th][4 * (2 * ks):4 * (2 * ks) + 4], s[th][4 * (2 * ks + 1):4 * (2 * ks + 1) + 4]
                regs.append([bf16(c0[0:2]), bf16(c0[2:4]), bf16(c1[0:2]), bf16(c1[2:4])])
            pa.append(regs)
        st[w]['pa'] = pa

    for w in range(W):  # first tile
        issue_scores(w, 0)
        scores_to_p(w, 0)
    for j in range(n_tiles - 1):
        if j + 2 < n_tiles:
            load_k(j + 2)
        if j + 1 < n_tiles:
            load_v(j + 1)
        for w in range(W):
            finish_pv(w)
        # (the kernel issues these loads after finish_pv and the barrier; in a sequential model
        # the order does not matter: the stages they overwrite were last read in iteration j - 1)
        for w in range(W):
            issue_scores(w, j + 1)
            issue_pv(w, j)
            scores_to_p(w, j + 1)
    for w in range(W):
        finish_pv(w)
        issue_pv(w, n_tiles - 1)
    # store
    for w in range(W):
        for th in range(128):
            warp, lane = th // 32, th % 32
            r0 = m0 + 64 * w + 16 * warp
            g, t = lane // 4, lane % 4
            for r in range(2):
                row = r0 + g + 8 * r
                quad = (th // 4) * 4
                l = sum(st[w]['l'][quad + qq][r] for qq in range(4))
                if row >= T:
                    continue
                inv = 1.0 / l if l > 0 else 0.0
                for dt in range(D // 8):
                    out[b, row, h, dt * 8 + 2 * t] = bf16(st[w]['o'][th][4 * dt + 2 * r] * inv)
                    out[b, row, h, dt * 8 + 2 * t + 1] = bf16(st[w]['o'][th][4 * dt + 2 * r + 1] * inv)
                if t == 0:
                    lse[b, h, row] = (st[w]['m'][th][r] + np.log2(l)) * 0.6931471805599453 if l > 0 else -np.inf


def reference(q, k, v, causal, scale):
    B, T, H, D = q.shape
    out = np.zeros((B, T, H, D))
    lse = np.zeros((B, H, T))
    for b in range(B):
        for h in range(H):
            s = q[b, :, h].astype(np.float64) @ k[b, :, h].astype(np.float64).T * scale
            if causal:
                s = np.where(np.tril(np.ones((T, T), bool)), s, -np.inf)
            mx = s.max(1, keepdims=True)
            p = np.exp(s - mx)
            l = p.sum(1, keepdims=True)
            out[b, :, h] = (p / l) @ v[b, :, h]
            lse[b, h] = (mx + np.log(l))[:, 0]
    return out, lse


def main(D, T, B, H, causal, smem_base, warpgroups=2):
    tr = Traits(D, warpgroups)
    q = bf16(RNG.standard_normal((B, T, H, D)).astype(np.float32))
    k = bf16(RNG.standard_normal((B, T, H, D)).astype(np.float32))
    v = bf16(RNG.standard_normal((B, T, H, D)).astype(np.float32))
    scale = 1.0 / np.sqrt(D)
    P = dict(T=T, causal=causal, scale=np.float32(scale))
    out = np.full((B, T, H, D), np.nan, np.float32)
    lse = np.full((B, H, T), np.nan, np.float32)
    n_mb = (T + tr.kBlockM - 1) // tr.kBlockM
    for bh in range(B * H):
        for bx in range(n_mb):
            run_cta(tr, P, q, k, v, out, lse, n_mb - 1 - bx, bh // H, bh % H, smem_base)
    ref, ref_lse = reference(q, k, v, causal, float(np.float32(scale)))
    assert not np.isnan(out).any() and not np.isnan(lse).any(), "unwritten"
    err = np.linalg.norm(out - ref) / np.linalg.norm(ref)
    lerr = np.abs(lse - ref_lse).max()
    print(f"D={D} T={T} B={B} H={H} causal={causal} warpgroups={warpgroups}: rel err {err:.2e}, lse err {lerr:.2e}")
    assert err < 1e-2 and lerr < 1e-3, "MISMATCH"


if __name__ == "__main__":
    for D, T, B, H, causal in [(64, 200, 1, 1, True), (128, 150, 1, 2, False), (64, 300, 1, 1, False),
                               (128, 300, 1, 1, True), (64, 17, 2, 1, True), (128, 1, 1, 1, False)]:
        main(D, T, B, H, causal, smem_base=16)
    # The traits' alternative at D = 64: 3 warpgroups, 192-row blocks.
    main(64, 400, 1, 1, True, smem_base=16, warpgroups=3)
    main(64, 193, 1, 1, False, smem_base=16, warpgroups=3)
