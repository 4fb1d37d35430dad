"""The Triton kernels of :mod:`skew._triton` (imported only where Triton is; see there for the maths).

Every kernel shifts its values by a first value c (a row's, a neuron's or the tensor's; 0 if that
one is not finite) and keeps per-lane float32 sums of k, y = z − c, y² and z > 0 over the finite
values, folded into float64 every ``FOLD`` tiles; one reduction per fold, none per tile.
"""

import triton
import triton.language as tl

FOLD = tl.constexpr(32)  # tiles per float32 lane sum before it is folded into float64


@triton.jit
def _finite(x, live):
    return live & (tl.abs(x) < float("inf"))


@triton.jit
def _shift(c):
    return tl.where(tl.abs(c) < float("inf"), c, 0.0)


@triton.jit
def _totals(N: tl.constexpr):
    # float64 K, S1, S2, POS of N rows (or neurons), zero
    return (tl.zeros([N], tl.float64), tl.zeros([N], tl.float64), tl.zeros([N], tl.float64),
            tl.zeros([N], tl.float64))


@triton.jit
def _lanes(A: tl.constexpr, B: tl.constexpr):
    # float32 lane sums ak, a1, a2, ap of an (A, B) tile, zero
    return (tl.zeros([A, B], tl.float32), tl.zeros([A, B], tl.float32), tl.zeros([A, B], tl.float32),
            tl.zeros([A, B], tl.float32))


@triton.jit
def _add(x, live, c, ak, a1, a2, ap):
    # one tile into the float32 lane sums: k, y = x - c, y² and x > 0 over the finite values
    fin = _finite(x, live)
    y = tl.where(fin, x - c, 0.0)
    return ak + fin.to(tl.float32), a1 + y, a2 + y * y, ap + (fin & (x > 0)).to(tl.float32)


@triton.jit
def _fold(K, S1, S2, POS, ak, a1, a2, ap, AXIS: tl.constexpr):
    # the lane sums, reduced along the positions' axis, into the float64 totals
    return (K + tl.sum(ak, AXIS).to(tl.float64), S1 + tl.sum(a1, AXIS).to(tl.float64),
            S2 + tl.sum(a2, AXIS).to(tl.float64), POS + tl.sum(ap, AXIS).to(tl.float64))


@triton.jit
def _store(k_out, mean_out, m2_out, pos_out, at, live, c, K, S1, S2, POS):
    # mean = c + S1/K, M2 = S2 - S1²/K (float64); rows with no finite value give 0, 0, 0
    kk = tl.maximum(K, 1.0)
    mean = tl.where(K > 0, c.to(tl.float64) + S1 / kk, 0.0)
    m2 = tl.maximum(S2 - S1 * S1 / kk, 0.0)
    tl.store(k_out + at, K, mask=live)
    tl.store(mean_out + at, mean, mask=live)
    tl.store(m2_out + at, m2, mask=live)
    tl.store(pos_out + at, POS, mask=live)


@triton.jit
def _rows(z, k_out, mean_out, m2_out, pos_out, RC, C, P, s_r, s_c, s_p, pid,
          ROWS: tl.constexpr, BLOCK: tl.constexpr):
    # (R, C, P): ROWS rows (r, c) for program pid, positions along the tile's second axis
    row = pid * ROWS + tl.arange(0, ROWS)
    live_r = row < RC
    base = (row // C).to(tl.int64) * s_r + (row % C).to(tl.int64) * s_c
    c = _shift(tl.load(z + base, mask=live_r, other=0.0).to(tl.float32))
    K, S1, S2, POS = _totals(ROWS)
    for q0 in range(0, P, BLOCK * FOLD):
        ak, a1, a2, ap = _lanes(ROWS, BLOCK)
        for p0 in range(q0, tl.minimum(q0 + BLOCK * FOLD, P), BLOCK):
            p = p0 + tl.arange(0, BLOCK)
            live = live_r[:, None] & (p < P)[None, :]
            x = tl.load(z + base[:, None] + p[None, :].to(tl.int64) * s_p, mask=live, other=0.0).to(tl.float32)
            ak, a1, a2, ap = _add(x, live, c[:, None], ak, a1, a2, ap)
        K, S1, S2, POS = _fold(K, S1, S2, POS, ak, a1, a2, ap, 1)
    _store(k_out, mean_out, m2_out, pos_out, row, live_r, c, K, S1, S2, POS)


@triton.jit
def _cols(z, k_out, mean_out, m2_out, pos_out, C, P, s_r, s_p, s_c, r, cb,
          BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    # (R, P, C): row r and the cb-th BLOCK_C neurons, positions along the tile's first axis
    col = cb * BLOCK_C + tl.arange(0, BLOCK_C)
    live_c = col < C
    base = r.to(tl.int64) * s_r + col.to(tl.int64) * s_c
    c = _shift(tl.load(z + base, mask=live_c, other=0.0).to(tl.float32))
    K, S1, S2, POS = _totals(BLOCK_C)
    for q0 in range(0, P, BLOCK_P * FOLD):
        ak, a1, a2, ap = _lanes(BLOCK_P, BLOCK_C)
        for p0 in range(q0, tl.minimum(q0 + BLOCK_P * FOLD, P), BLOCK_P):
            p = p0 + tl.arange(0, BLOCK_P)
            live = (p < P)[:, None] & live_c[None, :]
            x = tl.load(z + base[None, :] + p[:, None].to(tl.int64) * s_p, mask=live, other=0.0).to(tl.float32)
            ak, a1, a2, ap = _add(x, live, c[None, :], ak, a1, a2, ap)
        K, S1, S2, POS = _fold(K, S1, S2, POS, ak, a1, a2, ap, 0)
    _store(k_out, mean_out, m2_out, pos_out, r.to(tl.int64) * C + col, live_c, c, K, S1, S2, POS)


@triton.jit
def _blocks(x, part, N, ITERS, b, G, BLOCK: tl.constexpr):
    # block b of G: ITERS·BLOCK entries from b·ITERS·BLOCK on, shifted by the tensor's first value
    # c; writes (k, Σy, Σy², c) to part[0:4, b] of a (4, G) float64 buffer
    start = b.to(tl.int64) * ITERS * BLOCK
    c = _shift(tl.load(x).to(tl.float32))
    ak = tl.zeros([BLOCK], tl.float32)
    a1 = tl.zeros([BLOCK], tl.float32)
    a2 = tl.zeros([BLOCK], tl.float32)
    for i in range(0, ITERS):
        o = start + i * BLOCK + tl.arange(0, BLOCK)
        live = o < N
        v = tl.load(x + o, mask=live, other=0.0).to(tl.float32)
        fin = _finite(v, live)
        y = tl.where(fin, v - c, 0.0)
        ak += fin.to(tl.float32)
        a1 += y
        a2 += y * y
    tl.store(part + b, tl.sum(ak, 0).to(tl.float64))
    tl.store(part + G + b, tl.sum(a1, 0).to(tl.float64))
    tl.store(part + 2 * G + b, tl.sum(a2, 0).to(tl.float64))
    tl.store(part + 3 * G + b, c.to(tl.float64))


@triton.jit
def blocks_kernel(x, part, N, ITERS, BLOCK: tl.constexpr):
    _blocks(x, part, N, ITERS, tl.program_id(0), tl.num_programs(0), BLOCK)


@triton.jit
def level1_kernel(z, k_out, mean_out, m2_out, pos_out, RC, C, P, s_0, s_1, s_2, CB, GZ, x, part, N, ITERS,
                  PD: tl.constexpr, TILE_A: tl.constexpr, TILE_B: tl.constexpr, XBLOCK: tl.constexpr):
    # one launch for a hook call: programs [0, GZ) reduce the output's rows (PD = 2: (R, C, P),
    # tiles ROWS x BLOCK; PD = 1: (R, P, C), tiles BLOCK_P x BLOCK_C, CB column blocks), the others
    # the layer input's blocks
    pid = tl.program_id(0)
    if pid < GZ:
        if PD == 2:
            _rows(z, k_out, mean_out, m2_out, pos_out, RC, C, P, s_0, s_1, s_2, pid, TILE_A, TILE_B)
        else:
            _cols(z, k_out, mean_out, m2_out, pos_out, C, P, s_0, s_1, s_2, pid // CB, pid % CB, TILE_A, TILE_B)
    else:
        _blocks(x, part, N, ITERS, pid - GZ, tl.num_programs(0) - GZ, XBLOCK)


@triton.jit
def final_kernel(part, out, G, BLOCK: tl.constexpr):
    # the (4, G) block sums of _blocks -> (n, mean, M2) at out[0:3]
    c = tl.load(part + 3 * G)
    K = tl.zeros([BLOCK], tl.float64)
    S1 = tl.zeros([BLOCK], tl.float64)
    S2 = tl.zeros([BLOCK], tl.float64)
    for g0 in range(0, G, BLOCK):
        g = g0 + tl.arange(0, BLOCK)
        live = g < G
        K += tl.load(part + g, mask=live, other=0.0)
        S1 += tl.load(part + G + g, mask=live, other=0.0)
        S2 += tl.load(part + 2 * G + g, mask=live, other=0.0)
    k = tl.sum(K, 0)
    s1 = tl.sum(S1, 0)
    s2 = tl.sum(S2, 0)
    kk = tl.maximum(k, 1.0)
    tl.store(out, k)
    tl.store(out + 1, tl.where(k > 0, c + s1 / kk, 0.0))
    tl.store(out + 2, tl.maximum(s2 - s1 * s1 / kk, 0.0))


@triton.jit
def sinusoidal_kernel(out, sin_t, cos_t, sin_p, cos_p, amp, m, n, B, ROWS: tl.constexpr, BLOCK: tl.constexpr,
                      WIDE: tl.constexpr):
    # W[r, j] of skew.init.sinusoidal_ (row i = r + 1, j = j1·B + j0), the same separately rounded
    # float64 operations in the same order as its torch form (launched without FMA contraction)
    r = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    j = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    live_r = r < m
    live = live_r[:, None] & (j < n)[None, :]
    if WIDE:  # m·n ≥ 2³¹: the index products need 64 bits (else 32-bit products and remainders, faster)
        i = (r + 1).to(tl.int64)
        j1 = (j // B).to(tl.int64)
        j0 = (j % B).to(tl.int64)
    else:
        i = r + 1
        j1 = j // B
        j0 = j % B
    ia = (i[:, None] * j0[None, :]) % n
    ig = (i[:, None] * (j1 * B)[None, :]) % n
    sa = tl.load(sin_t + ia, mask=live, other=0.0)
    ca = tl.load(cos_t + ia, mask=live, other=0.0)
    sg = tl.load(sin_t + ig, mask=live, other=0.0)
    cg = tl.load(cos_t + ig, mask=live, other=0.0)
    sp = tl.load(sin_p + r, mask=live_r, other=0.0)[:, None]
    cp = tl.load(cos_p + r, mask=live_r, other=0.0)[:, None]
    a = tl.load(amp)
    sb = (sg * cp + cg * sp) * a
    cb = (cg * cp - sg * sp) * a
    w = sb * ca + cb * sa
    tl.store(out + r[:, None].to(tl.int64) * n + j[None, :], w.to(out.dtype.element_ty), mask=live)


@triton.jit
def _chan(n_acc, mean_acc, m2_acc, at, live, nb, mean_b, m2_b):
    # Chan's merge of (nb, mean_b, M2_b) into the running (n, mean, M2) at ``at``, as
    # skew.accumulators.chan_merge: w = nb/n, δ = mean_b − mean_a, mean = mean_a + δw,
    # M2 = M2_a + M2_b + δ²·n_a·w
    na = tl.load(n_acc + at, mask=live, other=0)
    mean_a = tl.load(mean_acc + at, mask=live, other=0.0)
    m2_a = tl.load(m2_acc + at, mask=live, other=0.0)
    nn = na + nb
    w = nb.to(tl.float64) / tl.maximum(nn, 1).to(tl.float64)
    delta = mean_b - mean_a
    tl.store(n_acc + at, nn, mask=live)
    tl.store(mean_acc + at, mean_a + delta * w, mask=live)
    tl.store(m2_acc + at, m2_a + m2_b + delta * delta * na.to(tl.float64) * w, mask=live)


@triton.jit
def _l2_columns(stk, R, CT, scale, cols, n_acc, mean_acc, m2_acc, pos_acc, nf_acc, oui_acc, B, pid,
                WHOLE: tl.constexpr, OUI: tl.constexpr, BLOCK: tl.constexpr):
    # level 2 and commit of one batch's calls, from their row summaries stk = (4, R, CT) float64
    # (k, mean, M2, positives of each sample r and column c): per column, over the R samples,
    # n = Σk, mean = Σ k·mean_r / n, M2 = Σ k·(mean_r − mean)² + Σ M2_r, the positives, the
    # non-finite count P·R − n and the active samples s = #{mean_r > 0, k > 0}; then Chan's merge
    # into the accumulators at column cols[c] (c itself when WHOLE), the OUI term min(s, B − s) /
    # ⌊B/2⌋ added (OUI). The torch path's float64 operations, launched without FMA contraction.
    c = pid * BLOCK + tl.arange(0, BLOCK)
    live = c < CT
    c64 = c.to(tl.int64)
    plane = (tl.zeros([BLOCK], tl.int64) + CT) * R  # offsets in 64 bits
    n = tl.zeros([BLOCK], tl.float64)
    sk = tl.zeros([BLOCK], tl.float64)
    m2b = tl.zeros([BLOCK], tl.float64)
    pos = tl.zeros([BLOCK], tl.float64)
    s = tl.zeros([BLOCK], tl.float64)
    o = c64
    for _r in range(0, R):
        k = tl.load(stk + o, mask=live, other=0.0)
        mu = tl.load(stk + plane + o, mask=live, other=0.0)
        n += k
        sk += k * mu
        m2b += tl.load(stk + 2 * plane + o, mask=live, other=0.0)
        pos += tl.load(stk + 3 * plane + o, mask=live, other=0.0)
        s += ((mu > 0) & (k > 0)).to(tl.float64)
        o += CT
    mean = sk / tl.maximum(n, 1.0)
    m2 = tl.zeros([BLOCK], tl.float64)
    o = c64
    for _r in range(0, R):
        k = tl.load(stk + o, mask=live, other=0.0)
        mu = tl.load(stk + plane + o, mask=live, other=0.0)
        dev = tl.where(k > 0, mu - mean, 0.0)
        m2 += k * dev * dev
        o += CT
    m2 = m2 + m2b
    nb = n.to(tl.int64)
    nonfinite = (tl.load(scale + c, mask=live, other=0.0) * R - n).to(tl.int64)
    if WHOLE:
        at = c64
    else:
        at = tl.load(cols + c, mask=live, other=0)
    _chan(n_acc, mean_acc, m2_acc, at, live, nb, mean, m2)
    tl.store(pos_acc + at, tl.load(pos_acc + at, mask=live, other=0) + tl.floor(pos + 0.5).to(tl.int64), mask=live)
    tl.store(nf_acc + at, tl.load(nf_acc + at, mask=live, other=0) + nonfinite, mask=live)
    if OUI:
        half = tl.zeros([BLOCK], tl.float64) + B // 2
        tl.store(oui_acc + at, tl.load(oui_acc + at, mask=live, other=0.0) + tl.minimum(s, B - s) / half, mask=live)


@triton.jit
def _l2_inputs(allp, GP, first, cnt, idx, L, GMAX, in_n, in_mean, in_m2, j, BLOCK: tl.constexpr):
    # the layer inputs j·BLOCK.. of the group: input i's G_i blocks (k, Σy, Σy², c) at columns
    # first[i].. of allp = (4, GP) float64 added up (n = Σk, mean = c + ΣΣy/n, M2 = ΣΣy² − (ΣΣy)²/n,
    # as skew._triton.combine), then Chan-merged into in_n/in_mean/in_m2 at idx[i]
    i = j * BLOCK + tl.arange(0, BLOCK)
    live = i < L
    start = tl.load(first + i, mask=live, other=0)
    count = tl.load(cnt + i, mask=live, other=0)
    n = tl.zeros([BLOCK], tl.float64)
    s1 = tl.zeros([BLOCK], tl.float64)
    s2 = tl.zeros([BLOCK], tl.float64)
    for b in range(0, GMAX):
        on = live & (b < count)
        o = start + b
        n += tl.load(allp + o, mask=on, other=0.0)
        s1 += tl.load(allp + GP + o, mask=on, other=0.0)
        s2 += tl.load(allp + 2 * GP + o, mask=on, other=0.0)
    kk = tl.maximum(n, 1.0)
    mean_b = tl.where(n > 0, tl.load(allp + 3 * GP + start, mask=live, other=0.0) + s1 / kk, 0.0)
    m2_b = tl.maximum(s2 - s1 * s1 / kk, 0.0)
    nb = n.to(tl.int64)
    _chan(in_n, in_mean, in_m2, tl.load(idx + i, mask=live, other=0), live, nb, mean_b, m2_b)


@triton.jit
def level2_kernel(stk, R, CT, scale, cols, n_acc, mean_acc, m2_acc, pos_acc, nf_acc, oui_acc, B,
                  allp, GP, first, cnt, idx, L, GMAX, in_n, in_mean, in_m2,
                  WHOLE: tl.constexpr, OUI: tl.constexpr, INPUTS: tl.constexpr, BLOCK: tl.constexpr):
    # one launch for a group's level 2 and commit: programs [0, ⌈CT/BLOCK⌉) take the neurons'
    # columns (_l2_columns), the others (INPUTS) the layer inputs' block sums (_l2_inputs)
    pid = tl.program_id(0)
    ncol = tl.cdiv(CT, BLOCK)
    if pid < ncol:
        _l2_columns(stk, R, CT, scale, cols, n_acc, mean_acc, m2_acc, pos_acc, nf_acc, oui_acc, B, pid,
                    WHOLE, OUI, BLOCK)
    else:
        if INPUTS:
            _l2_inputs(allp, GP, first, cnt, idx, L, GMAX, in_n, in_mean, in_m2, pid - ncol, BLOCK)
