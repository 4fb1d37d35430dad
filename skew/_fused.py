"""A one-pass CPU kernel for level 1 of :mod:`skew.accumulators`: each activation read once.

Level 1 reduces a layer output Z, viewed as (R, C, P) (R rows of samples, C neurons, P
positions), to per-(row, neuron) summaries. With the row's shift c = its first value:

.. math::
    s_1 = \\sum_p (z_p - c),\\quad s_2 = \\sum_p (z_p - c)^2,\\quad
    \\text{mean} = c + s_1/P,\\quad M_2 = s_2 - s_1^2/P,\\quad \\text{pos} = \\#\\{p : z_p > 0\\}

— the same quantities as the eager form, so a constant row gives exactly M2 = 0 (how degenerate
neurons are recognised). Eager torch needs one pass over Z per quantity plus an activation-sized
temporary; this kernel computes all three in **one read**: float32 vector lanes over blocks of at
most 32 values per lane, carried in float64 between blocks. :func:`sums` (a layer input's Σx and
Σx²) and :func:`row_stats` (weight row sums and norms) widen every value to float64 (exact) and
sum in float64 lanes, one read each. ``skew_fold`` is level 2 of such a call: the Chan merge of its
per-neuron summary into the running accumulators (:meth:`skew.accumulators.DeviceStats.fold`),
compiled without FMA contraction so that it gives the torch path's bits.
Each kernel asks for the memory it reads next ahead of time (``__builtin_prefetch``: 8 KiB ahead
along a row, or the next four rows): on the 2-core development VM, a just-written activation read
without it went at a third of the speed of the same read with it (16 MiB: 2.5 → 1.7 ms).

The C source below is compiled once per machine and compiler with the system C compiler (well
under a second) into a per-user cache (``$XDG_CACHE_HOME/skew`` or ``~/.cache/skew``) and called
through ctypes, which releases the GIL. A ``torch.compile``'d reduction would do the same but
costs seconds per process and per shape. Anything that goes wrong — no compiler, a failed build
or load, a mismatch in the self-test against a float64 reference — makes :func:`kernel` return
None and level 1 keeps its eager form; so does the environment variable ``SKEW_EAGER`` (set to
anything non-empty). Only float32 CPU tensors whose positions or neurons are contiguous go through
it; everything else (float64, accelerators, other layouts) stays eager. Work is split over
``torch.get_num_threads()`` threads for large outputs: where torch runs its threads on GNU OpenMP
(its Linux wheels), the library is built with ``-fopenmp`` and binds to torch's own libgomp, so
the pieces run in torch's intra-op pool, on workers still spinning from the layer before; else on
Python threads. Both splits cut the same pieces and give the same bits.

Example:
    >>> import torch
    >>> out = neurons(torch.tensor([[[1.0, 2.0, 3.0]]]), pd=2)
    >>> out is None or [t.item() for t in out[:4]] == [2.0, 2.0, 3.0, 1.0]
    True
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import torch

__all__ = ["available", "kernel", "neurons", "row_stats", "sums"]

_SOURCE = r"""
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#define LANES 8  /* 256-bit vectors */
#define BLOCK 32 /* values per float32 lane before the partial sums go to float64 */
#define AHEAD 2048 /* floats (8 KiB) read ahead: the hardware alone leaves a just-written Z's reads waiting */
typedef float vf __attribute__((vector_size(LANES * 4)));
typedef int32_t vi __attribute__((vector_size(LANES * 4)));

static inline vf load(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }

/* One row's summary (shift sh, s1, s2, positives) merged into its neuron's running (n, mean, M2)
   with Chan's formula; the row's own pattern bit is its mean > 0. */
static inline void merge(double sh, double t1, double t2, double tp, double invP, double n0, double w,
                         double *mean, double *m2, double *pos, double *act, uint8_t *bit) {
    /* w = P / (n0 + P), the new row's weight; invP = 1 / P (no division per row) */
    double d = t1 * invP, rm = sh + d, rv = t2 - t1 * d;
    double delta = rm - *mean;
    *mean += delta * w;
    *m2 += (rv > 0 ? rv : 0) + delta * delta * n0 * w;
    *pos += tp;
    *act += rm > 0;
    if (bit) *bit = rm > 0;
}

/* Horizontal sums of one block's lanes: a float32 tree (the lanes hold at most BLOCK values each). */
static inline float hsum(vf v) { return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7])); }
static inline int32_t hsumi(vi v) { return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7])); }

typedef double vd __attribute__((vector_size(LANES * 8)));
typedef int64_t vl __attribute__((vector_size(LANES * 8)));
static inline vd widen(vf v) { return __builtin_convertvector(v, vd); }
static inline vd widen_i(vi v) { return __builtin_convertvector(v, vd); }
static inline vd loadd(const double *p) { vd v; memcpy(&v, p, sizeof v); return v; }
static inline void stored(double *p, vd v) { memcpy(p, &v, sizeof v); }

/* Σx and Σx² of n floats x: float64 lanes a, b (and a2, b2 for the squares) over pairs of vectors,
   then one vector, the lanes' tree and the scalar tail (skew_sums). A level-1 kernel given a layer
   input reads it in the same pass as Z, a share at a time (feed: after `done` of Z's values, the
   same fraction of x's), with the same additions in the same order as skew_sums alone. */
typedef struct { vd a, b, a2, b2; const float *x; int64_t n, at; double ratio; } feed_t;

static inline void sums_run(feed_t *f, int64_t stop) { /* x[at, stop); stop - at a multiple of 2 * LANES */
    vd a = f->a, b = f->b, a2 = f->a2, b2 = f->b2;
    const float *x = f->x;
    for (int64_t i = f->at; i < stop; i += 2 * LANES) {
        __builtin_prefetch(x + i + 1024); /* 4 KiB ahead: the stream is usually cold (just written) */
        vd v = widen(load(x + i)), u = widen(load(x + i + LANES));
        a += v; b += u;
        a2 += v * v; b2 += u * u;
    }
    f->a = a; f->b = b; f->a2 = a2; f->b2 = b2; f->at = stop;
}

static inline void feed(feed_t *f, int64_t done) {
    if (!f->x) return;
    int64_t want = (int64_t)((double)done * f->ratio);
    want = (want < f->n ? want : f->n) & ~(int64_t)(2 * LANES - 1);
    if (want - f->at >= 512) sums_run(f, want); /* 2 KiB or more at a time */
}

static void sums_end(feed_t *f, double *out) {
    const float *x = f->x;
    const int64_t n = f->n;
    sums_run(f, n & ~(int64_t)(2 * LANES - 1));
    vd a = f->a, a2 = f->a2;
    int64_t i = f->at;
    for (; i + LANES <= n; i += LANES) {
        vd v = widen(load(x + i));
        a += v; a2 += v * v;
    }
    a += f->b; a2 += f->b2;
    double t1 = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
    double t2 = ((a2[0] + a2[4]) + (a2[1] + a2[5])) + ((a2[2] + a2[6]) + (a2[3] + a2[7]));
    for (; i < n; i++) { double v = x[i]; t1 += v; t2 += v * v; }
    out[0] = t1; out[1] = t2;
}

static inline feed_t feed_start(const float *x, int64_t nx, int64_t nz) {
    feed_t f = {{0}, {0}, {0}, {0}, x, nx, 0, nz > 0 ? (double)nx / (double)nz : 0.0};
    return f;
}

/* Short rows (P <= 2 * LANES) stored one after another (sc == P, sp == 1): LANES neighbouring rows
   (r, c .. c + LANES - 1) per step, one row per vector lane, and merge() vectorised over them. */
static inline void short_rows(const float *b0, int64_t P, double invP, double n0, double w, double *mean,
                              double *m2, double *pos, double *act, uint8_t *bit, vd *chk) {
    vf sh, a1 = {0}, a2 = {0};
    vi ap = {0};
    for (int j = 0; j < LANES; j++) sh[j] = b0[j * P];
    for (int64_t q = 0; q < LANES * P; q += 16) __builtin_prefetch(b0 + AHEAD + q);
    for (int64_t p = 0; p < P; p++) {
        vf v;
        for (int j = 0; j < LANES; j++) v[j] = b0[j * P + p];
        vf y = v - sh;
        a1 += y; a2 += y * y;
        ap -= (vi)(v > 0);
    }
    const vd t1 = widen(a1), t2 = widen(a2), d = t1 * invP, rm = widen(sh) + d;
    vd rv = t2 - t1 * d;
    rv = (vd)((vl)(rv > 0) & (vl)rv); /* max(rv, 0) */
    vd M = loadd(mean), delta = rm - M;
    stored(mean, M + delta * w);
    stored(m2, loadd(m2) + rv + delta * delta * (n0 * w));
    stored(pos, loadd(pos) + widen_i(ap));
    const vl on = (vl)(rm > 0);
    stored(act, loadd(act) - __builtin_convertvector(on, vd));
    if (bit)
        for (int j = 0; j < LANES; j++) bit[j] = on[j] != 0;
    *chk += t1 + t2;
}

/* Positions contiguous (sp == 1): every row (r, c) of neurons c in [c0, c1) read along memory.
   Per neuron: mean, M2, positives, active rows (row mean > 0); bits[r*C + c] for rows r < nhead;
   the sign raster sout[r*sgn[2] + smap[c]] = z[r, c, sgn[1]] > 0 for rows r < sgn[0] and the
   neurons with smap[c] >= 0.
   check[0] = sum over rows of s1 + s2: finite exactly when every value read is finite.
   Given a layer input x (n floats; else NULL), xout = (Σx, Σx²) as skew_sums gives them, read
   alongside Z. */
void skew_neurons_inner(const float *z, int64_t R, int64_t C, int64_t P, int64_t sr, int64_t sc, int64_t c0,
                        int64_t c1, double *mean, double *m2, double *pos, double *act, uint8_t *bits,
                        int64_t nhead, const int64_t *sgn, const int32_t *smap, uint8_t *sout, double *check,
                        const float *x, int64_t nx, double *xout) {
    const int64_t srows = sgn[0], smid = sgn[1], sld = sgn[2];
    double chk = 0;
    feed_t f = feed_start(x, nx, R * (c1 - c0) * P);
    int64_t done = 0;
    const double invP = 1.0 / (double)P;
    for (int64_t c = c0; c < c1; c++) { mean[c] = 0; m2[c] = 0; pos[c] = 0; act[c] = 0; }
    const int shortrows = sc == P && P <= 2 * LANES;
    for (int64_t r = 0; r < R; r++) {
        const double n0 = (double)(r * P), w = 1.0 / (double)(r + 1);
        int64_t c = c0;
        if (shortrows) {
            vd chkv = {0};
            for (; c + LANES <= c1; c += LANES) {
                const float *b0 = z + r * sr + c * P;
                short_rows(b0, P, invP, n0, w, mean + c, m2 + c, pos + c, act + c,
                           r < nhead ? bits + r * C + c : 0, &chkv);
                if (r < srows)
                    for (int j = 0; j < LANES; j++)
                        if (smap[c + j] >= 0) sout[r * sld + smap[c + j]] = b0[j * P + smid] > 0;
                feed(&f, done += LANES * P);
            }
            for (int j = 0; j < LANES; j++) chk += chkv[j];
        }
        for (; c < c1; c++) {
            const float *row = z + r * sr + c * sc;
            const float sh = row[0];
            const vf shv = sh - (vf){0};
            double t1 = 0, t2 = 0;
            int64_t tp = 0, p = 0;
            while (p < P) {
                int64_t stop = p + (int64_t)LANES * BLOCK < P ? p + (int64_t)LANES * BLOCK : P;
                float e1 = 0, e2 = 0;
                int32_t ep = 0;
                if (p + LANES <= stop) {
                    vf a1 = {0}, a2 = {0}, b1 = {0}, b2 = {0};
                    vi ap = {0}, bp = {0};
                    for (; p + 2 * LANES <= stop; p += 2 * LANES) { /* two chains hide the add latency */
                        __builtin_prefetch(row + p + AHEAD);
                        vf v = load(row + p), u = load(row + p + LANES);
                        vf y = v - shv, x = u - shv;
                        a1 += y; b1 += x;
                        a2 += y * y; b2 += x * x;
                        ap -= (vi)(v > 0); bp -= (vi)(u > 0);
                    }
                    for (; p + LANES <= stop; p += LANES) {
                        vf v = load(row + p);
                        vf y = v - shv;
                        a1 += y; a2 += y * y;
                        ap -= (vi)(v > 0);
                    }
                    e1 = hsum(a1 + b1); e2 = hsum(a2 + b2); ep = hsumi(ap + bp);
                }
                for (; p < stop; p++) {
                    float v = row[p], y = v - sh;
                    e1 += y; e2 += y * y; ep += v > 0;
                }
                t1 += e1; t2 += e2; tp += ep;
            }
            merge(sh, t1, t2, (double)tp, invP, n0, w, mean + c, m2 + c, pos + c, act + c,
                  r < nhead ? bits + r * C + c : 0);
            chk += t1 + t2;
            if (r < srows && smap[c] >= 0) sout[r * sld + smap[c]] = row[smid] > 0;
            feed(&f, done += P);
        }
    }
    if (x) sums_end(&f, xout);
    check[0] = chk;
}

/* Neurons contiguous (sc == 1): the rows of positions are read in memory order, TILE neurons at a
   time (the tile's float32 partial sums f1, f2, fp stay in L1; each read is a TILE-long run that
   the prefetchers follow), four positions per pass (their sum added to the partial sums at once),
   over blocks of BLOCK positions, then added in float64 to w1, w2, wp; each row (r, c) is then
   merged as in skew_neurons_inner. Its work arrays (C entries each) are its own: returns -1
   (nothing written) where they cannot be allocated, else 0. */
#define TILE 1024
int skew_neurons_outer(const float *z, int64_t R, int64_t C, int64_t P, int64_t sr, int64_t sp, int64_t c0,
                       int64_t c1, double *mean, double *m2, double *pos, double *act, uint8_t *bits,
                       int64_t nhead, const int64_t *sgn, const int32_t *smap, uint8_t *sout, double *check,
                       const float *x, int64_t nx, double *xout) {
    const int64_t srows = sgn[0], smid = sgn[1], sld = sgn[2];
    double chk = 0;
    feed_t f = feed_start(x, nx, R * (c1 - c0) * P);
    int64_t done = 0;
    double *work = malloc((size_t)C * 3 * sizeof(double));
    float *fwork = malloc((size_t)C * 3 * sizeof(float));
    if (!work || !fwork) { free(work); free(fwork); return -1; }
    double *w1 = work, *w2 = work + C, *wp = work + 2 * C;
    float *f1 = fwork, *f2 = fwork + C, *fp = fwork + 2 * C;
    for (int64_t c = c0; c < c1; c++) { mean[c] = 0; m2[c] = 0; pos[c] = 0; act[c] = 0; }
    for (int64_t r = 0; r < R; r++) {
        const float *base = z + r * sr;
        for (int64_t t0 = c0; t0 < c1; t0 += TILE) {
            const int64_t t1 = t0 + TILE < c1 ? t0 + TILE : c1;
            const float *restrict sh = base;
            float *restrict g1 = f1, *restrict g2 = f2, *restrict gp = fp;
            double *restrict d1 = w1, *restrict d2 = w2, *restrict dp = wp;
            for (int64_t c = t0; c < t1; c++) { d1[c] = 0; d2[c] = 0; dp[c] = 0; }
            for (int64_t p0 = 0; p0 < P; p0 += BLOCK) {
                const int64_t p1 = p0 + BLOCK < P ? p0 + BLOCK : P;
                for (int64_t c = t0; c < t1; c++) { g1[c] = 0; g2[c] = 0; gp[c] = 0; }
                int64_t p = p0;
                for (; p + 4 <= p1; p += 4) { /* four rows per pass: a quarter of the partial sums' loads and stores */
                    const float *restrict a0 = base + p * sp, *restrict a1 = a0 + sp, *restrict a2 = a1 + sp,
                                *restrict a3 = a2 + sp;
                    for (int64_t cc = t0; cc < t1; cc += 16) { /* a cache line at a time: the next pass's lines asked for */
                        if (p + 8 <= P) {
                            __builtin_prefetch(a0 + 4 * sp + cc); __builtin_prefetch(a1 + 4 * sp + cc);
                            __builtin_prefetch(a2 + 4 * sp + cc); __builtin_prefetch(a3 + 4 * sp + cc);
                        }
                        const int64_t ce = cc + 16 < t1 ? cc + 16 : t1;
                        for (int64_t c = cc; c < ce; c++) {
                            const float s = sh[c], v0 = a0[c], v1 = a1[c], v2 = a2[c], v3 = a3[c];
                            const float y0 = v0 - s, y1 = v1 - s, y2 = v2 - s, y3 = v3 - s;
                            g1[c] += (y0 + y1) + (y2 + y3);
                            g2[c] += (y0 * y0 + y1 * y1) + (y2 * y2 + y3 * y3);
                            gp[c] += ((v0 > 0 ? 1.0f : 0.0f) + (v1 > 0 ? 1.0f : 0.0f))
                                     + ((v2 > 0 ? 1.0f : 0.0f) + (v3 > 0 ? 1.0f : 0.0f));
                        }
                    }
                    feed(&f, done += 4 * (t1 - t0));
                }
                for (; p < p1; p++) {
                    const float *restrict row = base + p * sp;
                    for (int64_t c = t0; c < t1; c++) {
                        float v = row[c], y = v - sh[c];
                        g1[c] += y; g2[c] += y * y; gp[c] += v > 0 ? 1.0f : 0.0f;
                    }
                    done += t1 - t0;
                }
                for (int64_t c = t0; c < t1; c++) { d1[c] += g1[c]; d2[c] += g2[c]; dp[c] += gp[c]; }
            }
        }
        const double n0 = (double)(r * P), w = 1.0 / (double)(r + 1), invP = 1.0 / (double)P;
        uint8_t *bit = r < nhead ? bits + r * C : 0;
        for (int64_t c = c0; c < c1; c++) {
            merge(base[c], w1[c], w2[c], wp[c], invP, n0, w, mean + c, m2 + c, pos + c, act + c, bit ? bit + c : 0);
            chk += w1[c] + w2[c];
        }
        if (r < srows)
            for (int64_t c = c0; c < c1; c++)
                if (smap[c] >= 0) sout[r * sld + smap[c]] = base[smid * sp + c] > 0;
    }
    free(work); free(fwork);
    if (x) sums_end(&f, xout);
    check[0] = chk;
    return 0;
}

/* out = (sum x, sum x^2) of n contiguous floats, one pass, every value widened to float64 (exact)
   and summed in float64 lanes. */
void skew_sums(const float *x, int64_t n, double *out) {
    feed_t f = feed_start(x, n, 0);
    sums_end(&f, out);
}

/* Weight rows: sums[i] = sum_j w[i, j] and sq[i] = sum_j w[i, j]^2 of m rows of n floats (row
   stride ld), each row as skew_sums. */
void skew_row_stats(const float *w, int64_t m, int64_t n, int64_t ld, double *sums, double *sq) {
    for (int64_t i = 0; i < m; i++) {
        double out[2];
        skew_sums(w + i * ld, n, out);
        sums[i] = out[0]; sq[i] = out[1];
    }
}

/* Level 2 of one collapsed call (see DeviceStats.fold): Chan-merge the call's per-neuron (nb, mean, M2)
   into the running (n, mean, M2) of C neurons, add its positives, and (B >= 2) its OUI term
   min(s, B - s) / (B / 2) with s the active samples. The same float64 operations in the same order
   as the torch path (DeviceStats.commit), uncontracted (no FMA), so both give the same bits. */
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
void skew_fold(int64_t C, int64_t *n, double *mean, double *m2, int64_t *pos, double *oui, const double *mb,
               const double *m2b, const double *posb, const double *act, int64_t nb, int64_t B) {
    for (int64_t c = 0; c < C; c++) {
        const int64_t na = n[c], nn = na + nb;
        const double w = (double)nb / (double)(nn > 1 ? nn : 1), delta = mb[c] - mean[c];
        mean[c] = mean[c] + delta * w;
        m2[c] = (m2[c] + m2b[c]) + ((delta * delta) * (double)na) * w;
        n[c] = nn;
        pos[c] += (int64_t)__builtin_nearbyint(posb[c]);
    }
    if (B >= 2) {
        const double half = (double)(B / 2), b = (double)B;
        for (int64_t c = 0; c < C; c++) {
            const double s = act[c], t = b - s;
            oui[c] += (t < s ? t : s) / half;
        }
    }
}
#pragma GCC pop_options

/* The threaded forms: pieces [i * step, min(n, (i + 1) * step)) of a range of n (neurons, values or
   rows), one per thread of the OpenMP team of the calling thread. Built with OpenMP (skew_openmp()
   is 1), that team is torch's own intra-op pool, whose workers are still spinning after the layer
   that just ran, so the hand-off costs microseconds and no thread competes with them; built
   without, the pieces run one after another. Each piece is the single-threaded call on its range:
   the same bits as the Python-thread split over the same pieces. */
#ifdef _OPENMP
int skew_openmp(void) { return 1; }
#else
int skew_openmp(void) { return 0; }
#endif

int skew_neurons_split(int64_t outer, int64_t pieces, int64_t step, const float *z, int64_t R, int64_t C,
                       int64_t P, int64_t sr, int64_t st, double *mean, double *m2, double *pos, double *act,
                       uint8_t *bits, int64_t nhead, const int64_t *sgn, const int32_t *smap, uint8_t *sout,
                       double *check) {
    int failed = 0;
#pragma omp parallel for num_threads((int)pieces) schedule(static, 1) reduction(| : failed)
    for (int64_t i = 0; i < pieces; i++) {
        const int64_t a = i * step, b = a + step < C ? a + step : C;
        if (outer)
            failed |= skew_neurons_outer(z, R, C, P, sr, st, a, b, mean, m2, pos, act, bits, nhead, sgn, smap,
                                         sout, check + i, NULL, 0, NULL) != 0;
        else
            skew_neurons_inner(z, R, C, P, sr, st, a, b, mean, m2, pos, act, bits, nhead, sgn, smap, sout,
                               check + i, NULL, 0, NULL);
    }
    return failed;
}

void skew_sums_split(const float *x, int64_t pieces, int64_t step, int64_t n, double *out) {
#pragma omp parallel for num_threads((int)pieces) schedule(static, 1)
    for (int64_t i = 0; i < pieces; i++) {
        const int64_t a = i * step, b = a + step < n ? a + step : n;
        skew_sums(x + a, b - a, out + 2 * i);
    }
}

void skew_row_stats_split(const float *w, int64_t pieces, int64_t step, int64_t m, int64_t n, int64_t ld,
                          double *sums, double *sq) {
#pragma omp parallel for num_threads((int)pieces) schedule(static, 1)
    for (int64_t i = 0; i < pieces; i++) {
        const int64_t a = i * step, b = a + step < m ? a + step : m;
        skew_row_stats(w + a * ld, b - a, n, ld, sums + a, sq + a);
    }
}

/* Hamming distances of bit-packed patterns (rows of `words` 64-bit words): out[k] =
   popcount(w[i[k]] XOR w[j[k]]) over whole rows (the caller clears the bits past a row's units). */
void skew_hamming(const uint64_t *w, int64_t words, const int64_t *i, const int64_t *j, int64_t pairs,
                  int64_t *out) {
    for (int64_t k = 0; k < pairs; k++) {
        const uint64_t *a = w + i[k] * words, *b = w + j[k] * words;
        int64_t s = 0;
        for (int64_t t = 0; t < words; t++)
            s += __builtin_popcountll(a[t] ^ b[t]);
        out[k] = s;
    }
}
"""

_P = ctypes.c_void_p
_I = ctypes.c_int64
_SIGNATURES = {
    "skew_neurons_inner": [_P, _I, _I, _I, _I, _I, _I, _I, _P, _P, _P, _P, _P, _I, _P, _P, _P, _P, _P, _I, _P],
    "skew_neurons_outer": [_P, _I, _I, _I, _I, _I, _I, _I, _P, _P, _P, _P, _P, _I, _P, _P, _P, _P, _P, _I, _P],
    "skew_sums": [_P, _I, _P],
    "skew_row_stats": [_P, _I, _I, _I, _P, _P],
    "skew_fold": [_I, _P, _P, _P, _P, _P, _P, _P, _P, _P, _I, _I],
    "skew_hamming": [_P, _I, _P, _P, _I, _P],
    "skew_openmp": [],
    "skew_neurons_split": [_I, _I, _I, _P, _I, _I, _I, _I, _I, _P, _P, _P, _P, _P, _I, _P, _P, _P, _P],
    "skew_sums_split": [_P, _I, _I, _I, _P],
    "skew_row_stats_split": [_P, _I, _I, _I, _I, _I, _P, _P],
}
# skew_neurons_outer: 0, or -1 where its work arrays could not be allocated (the split: nonzero if any piece's
# were not); skew_openmp: 1 where built with OpenMP
_RETURNS_INT = {"skew_neurons_outer", "skew_neurons_split", "skew_openmp"}
_NO_SIGNS = (ctypes.c_int64 * 3)(0, 0, 0)
#: Below this many values (8 MiB of float32) a call runs on one thread. Inside a forward pass, the
#: other cores are still held by torch's OpenMP workers, which spin for a while after each parallel
#: layer: on the 2-core development VM with 2 torch threads, splitting the reads of 1-2 MiB outputs
#: made the hooks about 30% slower (MLP 4×2048: 30-31 → 18-23 ms per 10 batches unsplit; ResNet-18:
#: 150-156 → 103-115 ms), and splitting ResNet-18's 16 MiB first conv output gained nothing there.
#: Larger reads still go over the threads, where many cores pay for the hand-off.
PARALLEL_MIN = 1 << 21
#: The same where the split runs in torch's OpenMP pool (a library built with OpenMP): from 256K values
#: (1 MiB). The hand-off costs microseconds there, and a worker that is still spinning takes the other
#: half: on the same VM with 2 torch threads, skew's hook time per 10 batches went from 25 ms (MLP) and
#: 130 ms (ResNet-18) with the Python-thread split at 8 MiB to 18 ms and 105 ms (5 interleaved runs).
PARALLEL_MIN_OPENMP = 1 << 18
_lock = threading.Lock()
_state: dict = {}


def kernel():
    """The compiled library (a ``ctypes.CDLL``), or None where it cannot be had: then level 1 stays eager.

    Built and self-tested once per process; the build is cached per machine and compiler.

    Example:
        >>> lib = kernel()
        >>> lib is None or hasattr(lib, "skew_neurons_inner")
        True
    """
    if "lib" not in _state:
        with _lock:
            if "lib" not in _state:
                lib = None
                try:
                    lib = _load()
                    if lib is not None and not _self_test(lib):
                        lib = None
                except Exception:  # no compiler, no cache folder, a load error: eager it is
                    lib = None
                _state["lib"] = lib
    return _state["lib"]


def available() -> bool:
    """Whether the compiled kernel is in use in this process (False: eager torch reductions).

    Example:
        >>> isinstance(available(), bool)
        True
    """
    return kernel() is not None


def _cpu_tag() -> str:
    flags = ""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith(("flags", "Features"))), "")
    except OSError:
        pass
    return f"{platform.machine()}|{platform.system()}|{flags}"


def _load():
    if sys.platform.startswith("win") or os.environ.get("SKEW_EAGER"):
        return None
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return None
    flags = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC"]
    key = hashlib.sha256("\0".join([_SOURCE, cc, *flags, _cpu_tag()]).encode()).hexdigest()[:16]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folders = [os.path.join(base, "skew"), os.path.join(tempfile.gettempdir(), f"skew-{os.getuid()}")]
    # With OpenMP where torch runs its own threads on it (its libgomp, already loaded, is the one the
    # library binds to), else without: a compiler without OpenMP, or a library that will not load.
    variants = [("-omp", ["-fopenmp"])] if _torch_openmp() else []
    for suffix, extra in [*variants, ("", [])]:
        for folder in folders:  # the user cache, else a private temporary folder (read-only home)
            try:
                path = _build(cc, flags + extra, folder, f"fused-{key}{suffix}.so", remember=bool(extra))
                break
            except OSError:
                continue
        else:
            continue
        if path is None:
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name, args in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.argtypes = args
            fn.restype = ctypes.c_int if name in _RETURNS_INT else None
        return lib
    return None


def _torch_openmp() -> bool:
    """Whether torch's intra-op threads are GNU OpenMP's (its Linux wheels): its backend is OpenMP and
    a libgomp is already loaded, which a library built with -fopenmp then binds to (the same soname),
    so the split reads join torch's pool; not where the runtime is another (Intel's, LLVM's)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
            return False
        with open("/proc/self/maps") as fh:
            return any(os.path.basename(line.rstrip("\n").split(" ")[-1]).startswith("libgomp") for line in fh)
    except Exception:
        return False


#: Seconds one compiler run may take before the build is given up (for this process only).
BUILD_TIMEOUT = 120
#: Seconds a failed optional build (``<library>.failed``) is not tried again: one day.
FAILED_RETRY = 86400


def _failed_lately(marker: str) -> bool:
    """Whether ``marker`` exists and was written less than FAILED_RETRY seconds ago."""
    try:
        return time.time() - os.path.getmtime(marker) < FAILED_RETRY
    except OSError:
        return False


def _build(cc: str, flags: list[str], folder: str, name: str, remember: bool = False) -> str | None:
    """The compiled library's path in ``folder``, compiling it there first if needed (OSError: unwritable).

    None where it does not compile; with ``remember``, a failure is recorded beside it and not tried
    again for FAILED_RETRY seconds (an optional variant, such as OpenMP where the compiler lacks it;
    a failure that passes, such as a full disk, is retried a day later)."""
    path = os.path.join(folder, name)
    if os.path.exists(path):
        return path
    if remember and _failed_lately(path + ".failed"):  # not tried again in every process
        return None
    os.makedirs(folder, mode=0o700, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        src = os.path.join(tmp, "fused.c")
        with open(src, "w") as fh:
            fh.write(_SOURCE)
        out = os.path.join(tmp, "fused.so")
        for attempt in (flags, [f for f in flags if f != "-march=native"]):  # some compilers lack it
            try:
                done = subprocess.run([cc, *attempt, "-o", out, src], capture_output=True, timeout=BUILD_TIMEOUT)
            except subprocess.TimeoutExpired:  # a compiler that hangs (a loaded machine?): not remembered
                return None
            if done.returncode == 0:
                break
        else:
            if remember:
                with open(path + ".failed", "wb"):
                    pass
            return None
        os.replace(out, path)  # atomic: concurrent builders (test workers) agree
    return path


def hamming(words: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray | None:
    """popcount(words[i[k]] XOR words[j[k]]) for every pair k, from a C-contiguous (rows, n) uint64
    array, in one compiled pass; None where the library is not loaded in this process (it is not
    built for this: the caller's numpy form runs instead).

    Example:
        >>> w = np.array([[0b1011], [0b0001]], dtype=np.uint64)
        >>> got = hamming(w, np.array([0]), np.array([1]))
        >>> got is None or got.tolist() == [2]
        True
    """
    lib = _state.get("lib")
    if lib is None or words.dtype != np.uint64 or words.ndim != 2 or not words.flags.c_contiguous:
        return None
    i = np.ascontiguousarray(i, dtype=np.int64)
    j = np.ascontiguousarray(j, dtype=np.int64)
    if len(i) != len(j) or (len(i) and (min(i.min(), j.min()) < 0 or max(i.max(), j.max()) >= len(words))):
        return None
    out = np.empty(len(i), dtype=np.int64)
    lib.skew_hamming(words.ctypes.data, words.shape[1], i.ctypes.data, j.ctypes.data, len(i), out.ctypes.data)
    return out


def _usable(t: torch.Tensor) -> bool:
    return t.dtype == torch.float32 and t.is_cpu and not t.is_neg()  # (a real tensor is never conj)


def neurons(z3: torch.Tensor, pd: int, head: int = 0, lib=None, signs: tuple | None = None,
            x: torch.Tensor | None = None, out: torch.Tensor | None = None):
    """Per-neuron level-1 sums of a float32 CPU (R, C, P) (``pd=2``) / (R, P, C) (``pd=1``) view of Z,
    in one read; None where the kernel or the layout does not serve (then use eager torch).

    Returns (mean, M2, pos, act, bits, finite, xsums): the neuron's mean and M2 = Σ (z − mean)² over
    its R·P values, its positives #{z > 0}, its active rows #{r : row mean > 0} (C-vectors,
    float64), the rows' pattern bits (row mean > 0) for the first ``head`` rows ((head, C) bool, or
    None) and whether every value read was finite. Each row (r, c) is summed with its own shift, its
    first value z₀: s1 = Σ (z − z₀), s2 = Σ (z − z₀)², row mean z₀ + s1/P and row M2 = s2 − s1²/P (a
    constant row gives exactly 0); the rows are merged into the neuron with Chan's formula in
    float64. ``finite`` tests Σ (s1 + s2) over all rows.

    ``signs`` = (rows, position, columns, out) also records the sign raster while Z is read:
    ``out[r, columns[c]] = z[r, c, position] > 0`` for r < rows and every neuron c with
    ``columns[c] >= 0`` (``columns``: int32 (C,); ``out``: a contiguous bool tensor with ``rows``
    rows). It is ignored (not written) when P = 1, where the caller reads the signs directly.

    Given the layer input ``x``, the same pass also reads it, a share of x after each share of Z
    (both streams in flight at once: about 30 % less time than :func:`sums` then this alone on a
    just-written 256 × 2048 Linear output and its input), and ``xsums`` is :func:`sums` (x), bit for
    bit; else, or where x does not serve (not float32, not dense, on another device, work split over
    threads), ``xsums`` is None and the caller reads x itself.

    ``out``, a contiguous (4, C) float64 CPU tensor, receives mean, M2, pos and act (the first four
    results are its rows) instead of a new allocation: a caller that reuses one per call site keeps
    the C allocator's heap as the forward pass left it. Allocating these few kilobytes afresh in
    every hook made glibc hand memory back and the next layer's outputs fault their pages in again
    (MLP 4×2048: about 15,000 minor faults per 10 batches, the ReLUs' time doubled).

    Example:
        >>> z = torch.tensor([[[1.0, 2.0, 3.0], [-1.0, -1.0, -1.0]]])   # (R=1, C=2, P=3)
        >>> out = neurons(z, pd=2, head=1)
        >>> out is None or [t.tolist() for t in out[:5]] + [out[5]] == [
        ...     [2.0, -1.0], [2.0, 0.0], [3.0, 0.0], [1.0, 0.0], [[True, False]], True]
        True
    """
    lib = lib or kernel()
    if lib is None or not _usable(z3):
        return None
    z = z3 if pd == 2 else z3.transpose(1, 2)  # (R, C, P)
    R, C, P = (int(s) for s in z.shape)
    if R == 0 or C == 0 or P == 0:
        return None
    sr, sc, sp = z.stride()
    nhead = max(0, min(head, R))
    single = P == 1 and R > 1  # one value per sample: the R samples are one row of R values
    if single:
        R, P, sp, sr = 1, R, sr, 0
    fits = out is not None and out.shape == (4, C) and out.dtype == torch.float64 and out.is_cpu
    if not (fits and out.is_contiguous()):
        out = torch.empty(4, C, dtype=torch.float64)  # mean, M2, pos, act
    base = out.data_ptr()
    bits = torch.empty(nhead, C, dtype=torch.bool) if nhead else None
    keep = 0 if single else nhead
    ptrs = (base, base + 8 * C, base + 16 * C, base + 24 * C, bits.data_ptr() if keep else None, keep)
    if signs is not None and not single and signs[0] > 0:
        srows, smid, smap, sout = signs
        sgn = (ctypes.c_int64 * 3)(min(srows, R), smid, sout.stride(0))
        ptrs = (*ptrs, sgn, smap.data_ptr(), sout.data_ptr())
    else:
        ptrs = (*ptrs, _NO_SIGNS, None, None)
    ptr = z.data_ptr()
    threads = _threads(R * C * P, lib)
    check = (ctypes.c_double * threads)()
    where = ctypes.addressof(check)
    xsums, xargs = None, (None, 0, None)  # the layer input read in the same pass: one thread only
    if x is not None and threads == 1 and _threads(x.numel(), lib) == 1 and _usable(x) and x.numel() and _dense(x):
        xsums = (ctypes.c_double * 2)()
        xargs = (x.data_ptr(), x.numel(), xsums)
    if sp == 1 or (P == 1 and sc != 1):  # one row along memory at a time, lanes over positions
        fn, step, outer = lib.skew_neurons_inner, sc, False
    elif sc == 1:  # lanes over the neurons (the kernel allocates its C-long work arrays)
        fn, step, outer = lib.skew_neurons_outer, sp, True
    else:
        return None
    if threads == 1:  # the common case, without the split's closure
        failed = fn(ptr, R, C, P, sr, step, 0, C, *ptrs, where, *xargs)
    elif _openmp(lib):  # in torch's own thread pool
        pieces, size = _pieces(threads, C, 16)
        failed = lib.skew_neurons_split(outer, pieces, size, ptr, R, C, P, sr, step, *ptrs,
                                        where)
    else:
        codes = [0] * threads

        def piece(i: int, a: int, b: int) -> None:
            codes[i] = fn(ptr, R, C, P, sr, step, a, b, *ptrs, where + 8 * i, None, 0, None)

        _split(threads, C, 16, piece)
        failed = any(codes)
    if failed:  # out of memory for the work arrays: the eager form
        return None
    mean, m2, pos, act = out[0], out[1], out[2], out[3]
    if single:  # each sample's pattern bit is the sign of its one value
        act = pos
        if nhead:
            torch.gt(z[:nhead, :, 0], 0, out=bits)
    return mean, m2, pos, act, bits, math.isfinite(sum(check)), (xsums[0], xsums[1]) if xsums is not None else None


def sums(x: torch.Tensor, lib=None):
    """(Σx, Σx²) as Python floats (float64 sums) over every entry of a float32 CPU tensor, in one
    pass; None to use eager torch.

    Any dense layout is read as stored (the sums do not depend on the order): contiguous,
    channels-last, or any permutation without gaps.

    Example:
        >>> out = sums(torch.tensor([1.0, 2.0, 3.0]))
        >>> out is None or out == (6.0, 14.0)
        True
    """
    lib = lib or kernel()
    if lib is None or not _usable(x) or not _dense(x):
        return None
    n = x.numel()
    threads = _threads(n, lib)
    out = (ctypes.c_double * (2 * threads))()
    if threads == 1:
        lib.skew_sums(x.data_ptr(), n, out)
        return out[0], out[1]
    ptr, size, where = x.data_ptr(), x.element_size(), ctypes.addressof(out)
    if _openmp(lib):
        lib.skew_sums_split(ptr, *_pieces(threads, n, 1), n, out)
    else:
        _split(threads, n, 1, lambda i, a, b: lib.skew_sums(ptr + a * size, b - a, where + 16 * i))
    return sum(out[0::2]), sum(out[1::2])


def row_stats(rows: torch.Tensor, lib=None):
    """(Σ_j w_ij, √Σ_j w_ij²) per row of a float32 CPU (m, n) matrix whose rows run along memory, as
    float64 numpy arrays, in one read (each value widened to float64 exactly, summed in float64
    lanes, rows split over ``torch.get_num_threads()`` threads for large matrices); None to use
    eager torch (other dtypes, devices or layouts).

    Example:
        >>> out = row_stats(torch.tensor([[1.0, 2.0, 2.0], [0.0, -3.0, 4.0]]))
        >>> out is None or (out[0].tolist(), out[1].tolist()) == ([5.0, 1.0], [3.0, 5.0])
        True
    """
    lib = lib or kernel()
    if lib is None or rows.dim() != 2 or not _usable(rows) or rows.numel() == 0:
        return None
    m, n = rows.shape
    if n > 1 and rows.stride(1) != 1:
        return None
    sums = np.empty(m, dtype=np.float64)
    sq = np.empty(m, dtype=np.float64)
    ptr, ld, s_at, q_at = rows.data_ptr(), rows.stride(0), sums.ctypes.data, sq.ctypes.data
    # rows split over the threads (each row's sums do not depend on the split)
    threads = _threads(m * n, lib)
    if threads > 1 and _openmp(lib):
        lib.skew_row_stats_split(ptr, *_pieces(threads, m, 1), m, n, ld, s_at, q_at)
    else:
        _split(threads, m, 1, lambda i, a, b: lib.skew_row_stats(
            ptr + 4 * a * ld, b - a, n, ld, s_at + 8 * a, q_at + 8 * a))
    return sums, np.sqrt(sq, out=sq)


def _dense(x: torch.Tensor) -> bool:
    """Non-overlapping and without gaps: the entries fill numel() consecutive slots."""
    if x.is_contiguous():
        return True
    expect = 1
    for size, stride in sorted(zip(x.shape, x.stride()), key=lambda t: t[1]):
        if size == 1:
            continue
        if stride != expect:
            return False
        expect *= size
    return True


def _threads(work: int, lib) -> int:
    """The threads a call over ``work`` values is split over: torch's count from PARALLEL_MIN values
    (PARALLEL_MIN_OPENMP where ``lib`` splits in torch's OpenMP pool), else 1."""
    limit = min(PARALLEL_MIN, PARALLEL_MIN_OPENMP) if _openmp(lib) else PARALLEL_MIN
    return 1 if work < limit else max(1, torch.get_num_threads())


def _pieces(threads: int, n: int, align: int) -> tuple[int, int]:
    """(pieces, step): [0, n) cut into at most ``threads`` pieces [i·step, min(n, (i+1)·step)), each a
    multiple of ``align`` long but the last; one piece where n < 2·align.

    Example:
        >>> _pieces(2, 100, 16), _pieces(3, 10, 1), _pieces(2, 20, 16)
        ((2, 64), (3, 4), (1, 20))
    """
    if threads <= 1 or n < 2 * align:
        return 1, n
    step = -(-n // threads)
    step = -(-step // align) * align
    return -(-n // step), step


def _openmp(lib) -> bool:
    """Whether ``lib`` was built with OpenMP, so that its split calls run in torch's thread pool."""
    flag = getattr(lib, "_skew_openmp", None)
    if flag is None:
        flag = lib._skew_openmp = bool(lib.skew_openmp())
    return flag


def _split(threads: int, n: int, align: int, run) -> None:
    """Run ``run(i, a, b)`` over pieces i of [0, n) (:func:`_pieces`), on Python threads (ctypes
    drops the GIL in each): the form for a library built without OpenMP."""
    pieces, step = _pieces(threads, n, align)
    if pieces == 1:
        run(0, 0, n)
        return
    bounds = [(a, min(n, a + step)) for a in range(0, n, step)]
    pool = _pool(len(bounds) - 1)
    futures = [pool.submit(run, i, a, b) for i, (a, b) in enumerate(bounds) if i > 0]
    run(0, *bounds[0])  # this thread takes the first piece
    for f in futures:
        f.result()


def _pool(workers: int):
    from concurrent.futures import ThreadPoolExecutor

    pool = _state.get("pool")
    if pool is None or pool._max_workers < workers:
        pool = _state["pool"] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="skew-fused")
    return pool


def _self_test(lib) -> bool:
    """Compare the kernel with a float64 reference on small inputs of every layout it takes."""
    gen = torch.Generator().manual_seed(0)
    cases = [((3, 5, 37), 2, False), ((3, 37, 5), 1, False), ((1, 7, 19), 1, False), ((4, 6, 1), 2, False),
             ((2, 9, 40), 2, True), ((5, 20, 1), 2, True), ((3, 21, 5), 2, False), ((2, 17, 16), 2, False)]
    for shape, pd, transpose in cases:
        z = torch.randn(*shape, generator=gen) * 2 + 1
        z[0].flatten()[:3] = 0.0
        if transpose:  # a (R, C, P) view whose positions are strided and neurons contiguous
            z = z.transpose(1, 2).contiguous().transpose(1, 2)
        out = neurons(z, pd, 2, lib)
        if out is None or not _matches(z, pd, out):
            return False
        both = sums(z, lib)
        zb = z.double()
        if both is None or not torch.allclose(torch.tensor(both, dtype=torch.float64),
                                              torch.stack([zb.sum(), (zb * zb).sum()]), rtol=1e-6):
            return False
        flat = z.reshape(z.shape[0], -1)
        rs = row_stats(flat, lib)
        fd = flat.double()
        if rs is None or not (np.allclose(rs[0], fd.sum(1).numpy(), rtol=1e-12, atol=1e-12)
                              and np.allclose(rs[1], fd.norm(dim=1).numpy(), rtol=1e-12)):
            return False
        z[-1, -1, -1] = float("nan")  # a non-finite value must show
        if neurons(z, pd, 0, lib)[5] or math.isfinite(sum(sums(z, lib))):
            return False
    return True


def _matches(z: torch.Tensor, pd: int, out) -> bool:
    """Whether ``neurons``' output agrees with a float64 reference computed from z."""
    zb = (z if pd == 2 else z.transpose(1, 2)).double()  # (R, C, P)
    rows = zb.mean(2)
    ref = (zb.mean((0, 2)), zb.var((0, 2), correction=0) * zb.shape[0] * zb.shape[2],
           (zb > 0).sum((0, 2)).double(), (rows > 0).sum(0).double())
    if not all(torch.allclose(a, b, rtol=1e-5, atol=1e-4) for a, b in zip(out[:4], ref)):
        return False
    head = out[4]
    return torch.equal(out[2], ref[2]) and out[5] is True and (head is None or torch.equal(head, rows[:2] > 0))
