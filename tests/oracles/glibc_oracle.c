/* An oracle for glibc's binary32 elementary functions, independent of mishaudit.

   gcc -O2 -fopenmp -fno-builtin glibc_oracle.c -o glibc_oracle -lquadmath -lm
   glibc_oracle FUNC [LO HI] [-v] [-w]     FUNC: expf exp2f expm1f logf log1pf tanhf
   (-v: one line per input on stdout, x y RN32(r) err refined; -w: each wrongly rounded x on stderr)

   Inputs: every binary32 x of FUNC's audited domain with LO <= x <= HI (LO, HI: numbers as strtod reads
   them, or ordinals written ord:N; default: the whole domain). Ordinals: ord(+-0) = 0, ord(next up) =
   ord + 1; ordinal 0 stands for both -0 and +0 (two inputs). Audited domains: log x > 0; log1p x > -1;
   exp, exp2, expm1 every finite x up to the largest x whose RN32(f(x)) is finite; tanh every finite x.

   Per input: y = FUNC(x) from glibc (called through a pointer: no builtin, no folding), r = f(x) exact,
   RN32 = round to nearest even in binary32 (subnormals, overflow to inf),
   ulp(r) = 2^(max(floor(log2|r|), -126) - 23), err = |y - r| / ulp(r).
   Folded: inputs, max_ulp (max err over finite y), worst_x (the smallest x attaining it), worst_xs (the
   first MAXK of them by value), worst_count, wrong (y != RN32(r) as numbers, +0 == -0), gt_half and gt_one
   (err > 0.5, > 1), nonfinite (y not finite: counted in wrong, kept out of the err figures).

   The reference r: the x87 long double functions (64-bit significand), assumed |r - f(x)| <= EL |f(x)|,
   EL = 2^-56 (2^7 long double ulps; glibc documents at most a few). RN32 is decided when both ends of
   r(1 -+ E) round to the same float (rounding is monotone); floor(log2|r|) when no power of two c lies
   within E|r|, or by an exact inequality (`side`) when one does. Where long double does not decide RN32(r)
   or floor(log2|r|), or err lies within its bound of 1/2 or 1, or (for err >= 2^-10) of a block's maximum,
   __float128 (libquadmath, assumed EQ = 2^-104) decides instead. About 2^(32-k) binary32 inputs have a
   result within 2^-k ulp of a midpoint, so the closest of all sits some 2^-(24+35) relative away, far above
   EQ; `undecided` counts any input quad does not decide. `check`: every ordinal divisible by 4099 compares
   long double with quad; `check_bad` counts |rl - rq| > (EL - EQ)|rq| (EL failing), `check_max_rel` is the
   largest |rl - rq| / |rq|. Exact cases (exp(0), exp2(integer), expm1/log1p/tanh(+-0), log(1)) take r
   as computed (exact in both). Output: one JSON line on stdout (deterministic); the time on stderr. */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <quadmath.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EXP, EXP2, EXPM1, LOG, LOG1P, TANH, NF };
static const char *NAMES[NF] = {"expf", "exp2f", "expm1f", "logf", "log1pf", "tanhf"};
static float (*volatile FF[NF])(float) = {expf, exp2f, expm1f, logf, log1pf, tanhf};
static long double (*volatile LF[NF])(long double) = {expl, exp2l, expm1l, logl, log1pl, tanhl};
static __float128 (*volatile QF[NF])(__float128) = {expq, exp2q, expm1q, logq, log1pq, tanhq};
#define EL 0x1p-56L
#define EQ 0x1p-104Q
#define MAXK 32
#define BLOCK (1 << 16)

static float of_ord(int64_t o, int neg_zero) {  /* the float of ordinal o (o = 0: +0, or -0 if neg_zero) */
    uint32_t b = o < 0 ? (uint32_t)(-o) | 0x80000000u : (uint32_t)o;
    if (o == 0 && neg_zero) b = 0x80000000u;
    float x;
    memcpy(&x, &b, 4);
    return x;
}
static int64_t ord_of(float x) {
    uint32_t b;
    memcpy(&b, &x, 4);
    return (b >> 31) ? -(int64_t)(b & 0x7fffffffu) : (int64_t)b;
}

static int exact_case(int f, float x) {
    switch (f) {
    case EXP: return x == 0;
    case EXP2: return x == nearbyintf(x);
    case LOG: return x == 1;
    default: return x == 0;  /* expm1, log1p, tanh */
    }
}

/* +1 if |f(x)| > c, -1 if |f(x)| < c, 0 unknown, for a power of two c that |r| lies next to: c = 1 (exp and
   exp2 near x = 0, expm1 for x << 0, tanh for large |x|) or c = |x| (expm1, log1p, tanh for tiny x), by exact
   inequalities (e^x > 1 iff x > 0; -1 < expm1(x) < 0 for x < 0; expm1(x) > x; log1p(x) < x;
   |tanh x| < min(|x|, 1); x != 0). */
static int side(int f, float x, double c) {
    if (c == 1 && (f == EXP || f == EXP2)) return x > 0 ? 1 : -1;
    if (c == 1 && f == EXPM1 && x < 0) return -1;
    if (f == TANH && (c == 1 || c == fabsf(x))) return -1;
    if (c == fabsf(x) && f == EXPM1) return x > 0 ? 1 : -1;
    if (c == fabsf(x) && f == LOG1P) return x > 0 ? -1 : 1;
    return 0;
}

typedef struct { float rn; double err, unc; int ok; } Verdict;  /* ok: RN32(r) and floor(log2|r|) decided */

/* The verdict on y from r, |r - f(x)| <= E|f(x)|, for T = long double or __float128. */
#define JUDGE(NAME, T, FREXP, LDEXP, FABS)                                                                 \
    static Verdict NAME(int f, float x, float y, T r, T E, int exact) {                                    \
        Verdict v;                                                                                         \
        T lo = r - FABS(r) * E, hi = r + FABS(r) * E; /* holds f(x) */                                     \
        v.rn = (float)r;                                                                                   \
        v.ok = exact || (float)lo == (float)hi;                                                            \
        int k, e = -126;                                                                                   \
        T m = FREXP(FABS(r), &k); /* |r| = m 2^k, m in [1/2, 1): floor(log2|r|) = k - 1 */                 \
        if (r != 0) {                                                                                      \
            e = k - 1;                                                                                     \
            if (!exact && m < (T)0.5 * (1 + 2 * E) && k - 1 > -126) { /* f(x) may lie below 2^(k-1) */    \
                int s = side(f, x, ldexp(1.0, k - 1));                                                     \
                if (s < 0) e = k - 2; else if (s == 0) v.ok = 0;                                          \
            } else if (!exact && m > 1 - 2 * E && k > -126) { /* f(x) may reach 2^k */                     \
                int s = side(f, x, ldexp(1.0, k));                                                         \
                if (s > 0) e = k; else if (s == 0) v.ok = 0;                                              \
            }                                                                                              \
        }                                                                                                  \
        int q = (e > -126 ? e : -126) - 23; /* ulp(r) = 2^q */                                             \
        v.err = (double)LDEXP(FABS((T)y - r), -q);                                                         \
        v.unc = (double)LDEXP(FABS(r) * E, -q) + 0x1p-60; /* |err - exact err| <= unc */                   \
        return v;                                                                                          \
    }
JUDGE(judge_l, long double, frexpl, ldexpl, fabsl)
JUDGE(judge_q, __float128, frexpq, ldexpq, fabsq)

typedef struct {
    long long n, wrong, gt_half, gt_one, nonfinite, undecided, quad, cnt_max, chk_n, chk_bad;
    double max, chk_rel;
    int nmax;
    float xs[MAXK];
} Fold;

static int verbose, list_wrong;

typedef struct { float x, y; int refined; Verdict v; } Rec;

/* Phase 1 of an input: y, and the long double verdict, in quad where it does not decide or err lies within
   its bound of 1/2 or 1; the long double vs quad check on every 4099th ordinal. */
static void first(int f, float x, int64_t o, Rec *c, Fold *b) {
    c->x = x;
    c->y = FF[f](x);
    int exact = exact_case(f, x);
    long double rl = LF[f](x);
    c->v = judge_l(f, x, c->y, rl, EL, exact);
    c->refined = !c->v.ok || fabs(c->v.err - 0.5) <= c->v.unc || fabs(c->v.err - 1) <= c->v.unc;
    if (c->refined || o % 4099 == 0) {
        __float128 rq = QF[f](x);
        if (o % 4099 == 0 && fabsq(rq) > 0x1p-16300Q) {
            __float128 rel = fabsq((__float128)rl - rq) / fabsq(rq);
            b->chk_n++;
            b->chk_bad += rel > (__float128)EL - EQ;
            if ((double)rel > b->chk_rel) b->chk_rel = (double)rel;
        }
        if (c->refined) c->v = judge_q(f, x, c->y, rq, EQ, exact);
    }
}

static void refine(int f, Rec *c) {
    c->refined = 1;
    c->v = judge_q(f, c->x, c->y, QF[f](c->x), EQ, exact_case(f, c->x));
}

/* One block of ordinals a..e (ascending; ordinal 0 as -0 then +0), in three passes: phase 1; then quad for
   every input whose err (>= 2^-10) may reach the block's maximum within the bounds; then the fold. */
static void block(int f, int64_t a, int64_t e, Rec *rec, Fold *b) {
    int n = 0;
    double maxl = -1, maxunc = 0;
    b->max = -1;
    for (int64_t o = a; o <= e; o++) {
        if (o == 0) first(f, of_ord(0, 1), 0, &rec[n++], b);
        first(f, of_ord(o, 0), o, &rec[n++], b);
    }
    for (int i = 0; i < n; i++)
        if (isfinite(rec[i].y)) {
            if (rec[i].v.err > maxl) maxl = rec[i].v.err;
            if (!rec[i].refined && rec[i].v.unc > maxunc) maxunc = rec[i].v.unc;
        }
    for (int i = 0; i < n; i++)
        if (!rec[i].refined && isfinite(rec[i].y) && rec[i].v.err >= 0x1p-10 &&
            rec[i].v.err + rec[i].v.unc >= maxl - maxunc)
            refine(f, &rec[i]);
    for (int i = 0; i < n; i++) {
        Rec *c = &rec[i];
        b->n++;
        b->quad += c->refined;
        b->undecided += !c->v.ok;
        b->wrong += !(c->y == c->v.rn);
        if (list_wrong && !(c->y == c->v.rn)) fprintf(stderr, "wrong %a\n", c->x);
        if (verbose)
            printf("%a %a %a %.17g %d\n", c->x, c->y, c->v.rn, isfinite(c->y) ? c->v.err : NAN, c->refined);
        if (!isfinite(c->y)) { b->nonfinite++; continue; }
        b->gt_half += c->v.err > 0.5;
        b->gt_one += c->v.err > 1;
        if (c->v.err > b->max) { b->max = c->v.err; b->nmax = 0; b->cnt_max = 0; }
        if (c->v.err == b->max) {
            b->cnt_max++;
            if (b->nmax < MAXK) b->xs[b->nmax++] = c->x;
        }
    }
}

static void fold_into(Fold *a, const Fold *b) {  /* a then b (b's inputs follow a's): deterministic */
    a->n += b->n; a->wrong += b->wrong; a->gt_half += b->gt_half; a->gt_one += b->gt_one;
    a->nonfinite += b->nonfinite; a->undecided += b->undecided; a->quad += b->quad;
    a->chk_n += b->chk_n; a->chk_bad += b->chk_bad;
    if (b->chk_rel > a->chk_rel) a->chk_rel = b->chk_rel;
    if (b->max > a->max) { a->max = b->max; a->nmax = 0; a->cnt_max = 0; }
    if (b->max == a->max) {
        a->cnt_max += b->cnt_max;
        for (int i = 0; i < b->nmax && a->nmax < MAXK; i++) a->xs[a->nmax++] = b->xs[i];
    }
}

/* Is RN32(f(x)) finite? (Decided in quad: no input near the overflow threshold is a hard case.) */
static int finite_at(int f, int64_t o) { return isfinite((float)QF[f](of_ord(o, 0))); }

static int64_t bound(const char *s, int is_lo) {  /* the inward ordinal of a bound */
    if (!strncmp(s, "ord:", 4)) return strtoll(s + 4, NULL, 10);
    double d = strtod(s, NULL);
    if (d < -FLT_MAX) d = -FLT_MAX;
    if (d > FLT_MAX) d = FLT_MAX;
    float v = (float)d;
    int64_t o = ord_of(v);
    if (is_lo && (double)v < d) o++;
    if (!is_lo && (double)v > d) o--;
    return o;
}

int main(int argc, char **argv) {
    int f = -1, npos = 0;
    const char *pos[2] = {0, 0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-v")) verbose = 1;
        else if (!strcmp(argv[i], "-w")) list_wrong = 1;
        else if (f < 0) { for (int k = 0; k < NF; k++) if (!strcmp(argv[i], NAMES[k])) f = k; if (f < 0) goto usage; }
        else if (npos < 2) pos[npos++] = argv[i];
        else goto usage;
    }
    if (f < 0 || npos == 1) goto usage;
    int64_t omax = ord_of(FLT_MAX), dlo = -omax, dhi = omax;  /* the audited domain */
    if (f == LOG) dlo = 1;
    if (f == LOG1P) dlo = -(ord_of(1.0f) - 1);
    if (f == EXP || f == EXP2 || f == EXPM1) {  /* last x with RN32(f(x)) finite, by bisection */
        int64_t a = 0, b = omax;
        while (b - a > 1) { int64_t m = (a + b) / 2; if (finite_at(f, m)) a = m; else b = m; }
        dhi = a;
    }
    int64_t lo = dlo, hi = dhi;
    if (npos == 2) {
        int64_t l = bound(pos[0], 1), h = bound(pos[1], 0);
        if (l > lo) lo = l;
        if (h < hi) hi = h;
    }
    Fold all = {0};
    all.max = -1;
    double t0 = omp_get_wtime();
    if (lo <= hi) {
        int64_t nb = (hi - lo) / BLOCK + 1;
        Fold *blocks = calloc(nb, sizeof(Fold));
        if (verbose) omp_set_num_threads(1);
#pragma omp parallel
        {
            Rec *rec = malloc((BLOCK + 1) * sizeof(Rec));
#pragma omp for schedule(dynamic, 1)
            for (int64_t i = 0; i < nb; i++)
                block(f, lo + i * BLOCK, lo + i * BLOCK + BLOCK - 1 < hi ? lo + i * BLOCK + BLOCK - 1 : hi, rec,
                      &blocks[i]);
            free(rec);
        }
        for (int64_t i = 0; i < nb; i++) fold_into(&all, &blocks[i]);
        free(blocks);
    }
    fprintf(stderr, "%s: %lld inputs in %.1f s on %d threads\n", NAMES[f], all.n, omp_get_wtime() - t0,
            omp_get_max_threads());
    if (all.nmax == 0) {  /* no input (or no finite y): max_ulp and worst_x are null */
        printf("{\"function\": \"%s\", \"inputs\": %lld, \"max_ulp\": null, \"worst_x\": null, ", NAMES[f], all.n);
    } else {
        printf("{\"function\": \"%s\", \"lo\": %.17g, \"hi\": %.17g, \"inputs\": %lld, \"max_ulp\": %.17g, ",
               NAMES[f], (double)of_ord(lo, lo == 0), (double)of_ord(hi, 0), all.n, all.max);
        printf("\"worst_x\": %.17g, ", (double)all.xs[0]);
    }
    printf("\"worst_count\": %lld, \"worst_xs\": [", all.cnt_max);
    for (int i = 0; i < all.nmax; i++) printf("%s%.17g", i ? ", " : "", (double)all.xs[i]);
    printf("], \"wrong\": %lld, \"gt_half\": %lld, \"gt_one\": %lld, \"nonfinite\": %lld, \"undecided\": %lld, "
           "\"quad\": %lld, \"check\": %lld, \"check_bad\": %lld, \"check_max_rel\": %.3g}\n",
           all.wrong, all.gt_half, all.gt_one, all.nonfinite, all.undecided, all.quad, all.chk_n, all.chk_bad,
           all.chk_rel);
    return 0;
usage:
    fprintf(stderr, "usage: %s {expf|exp2f|expm1f|logf|log1pf|tanhf} [LO HI] [-v] [-w]  (LO, HI: numbers or ord:N)\n",
            argv[0]);
    return 2;
}
