/* yardstick.c - the plain C loop a user would write instead of mishaudit to audit mish in binary32.
 *
 * For every finite binary32 input x (all 4,278,190,080 bit patterns whose exponent field is not 255,
 * -0 and +0 both included), or for the inputs of a sub-range of ordinals, it computes
 *
 *     y = x * tanhf(log1pf(expf(x)))                                  (float, glibc libm)
 *     r = (double)x * tanh(log1p(exp((double)x)))                     (double, glibc libm)
 *
 * and reports how far y lies from r in ulps of r:
 *
 *     err = |y - r| / ulp(r),  ulp(r) = 2^(max(floor(log2|r|), -126) - 23)   (r = 0: ulp = 2^-149)
 *
 * Printed (one JSON line): the input count, the count of nonfinite y (left out of max and mean), the
 * largest err and the first input (in ordinal order) reaching it, the mean err, the share of inputs
 * with y == (float)r ("CR share" against this reference) and the wall seconds of the loop.
 *
 * The reference r is NOT proven: it is binary64 glibc, itself rounded at every step, so err is only an
 * estimate of the true error and y == (float)r does not prove y correctly rounded. That is the point
 * of this baseline: it is what one gets without a proven reference.
 *
 * Ordinals (as mishaudit/analysis/sweep.py values(lo, hi)): ordinal k >= 0 is the value with bits k;
 * ordinal -k <= 0 is the value with the sign bit set and magnitude bits k. Ordinal 0 stands for both -0
 * and +0, so the default range -0x7F7FFFFF..0x7F7FFFFF holds every finite value exactly once.
 *
 * Build: gcc -O2 -fopenmp -std=c11 -o yardstick yardstick.c -lm
 * Run:   OMP_NUM_THREADS=N ./yardstick [LO HI]      (LO, HI: ordinals, decimal or 0x hex, may be negative)
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ORD 0x7F7FFFFFLL /* largest finite magnitude: FLT_MAX */

typedef struct {
    long long n, nonfinite, cr;
    double sum, max;
    long long worst; /* index of the first input reaching max, -1: none */
    char pad[64];    /* keep threads' partials on separate cache lines */
} Partial;

static float from_bits(uint32_t b) {
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

int main(int argc, char **argv) {
    long long lo = -MAX_ORD, hi = MAX_ORD;
    if (argc == 3) {
        lo = strtoll(argv[1], NULL, 0);
        hi = strtoll(argv[2], NULL, 0);
    } else if (argc != 1) {
        fprintf(stderr, "usage: %s [LO HI]\n", argv[0]);
        return 2;
    }
    if (lo < -MAX_ORD || hi > MAX_ORD || lo > hi) {
        fprintf(stderr, "need -0x7F7FFFFF <= LO <= HI <= 0x7F7FFFFF\n");
        return 2;
    }
    /* inputs i < nneg: magnitudes -lo, -lo-1, ... with the sign bit set (-0 last when hi >= 0);
       then the nonnegative ordinals max(lo, 0) .. hi */
    long long nneg = lo <= 0 ? -lo - (hi < 0 ? -hi : 0) + 1 : 0;
    long long npos = hi >= 0 ? hi - (lo > 0 ? lo : 0) + 1 : 0;
    long long total = nneg + npos, pos0 = lo > 0 ? lo : 0;

    int nthreads = omp_get_max_threads();
    Partial *part = calloc((size_t)nthreads, sizeof *part);
    if (!part) return 1;

    double t0 = omp_get_wtime();
#pragma omp parallel num_threads(nthreads)
    {
        Partial p = {0, 0, 0, 0.0, -1.0, -1, {0}};
#pragma omp for schedule(static)
        for (long long i = 0; i < total; i++) {
            uint32_t bits = i < nneg ? (uint32_t)(-lo - i) | 0x80000000u : (uint32_t)(pos0 + (i - nneg));
            float x = from_bits(bits);
            float y = x * tanhf(log1pf(expf(x)));
            double r = (double)x * tanh(log1p(exp((double)x)));
            p.n++;
            if (y == (float)r) p.cr++;
            if (!isfinite(y)) {
                p.nonfinite++;
                continue;
            }
            int e;
            frexp(r, &e); /* |r| = m * 2^e, m in [0.5, 1): floor(log2|r|) = e - 1 */
            double ulp = r == 0.0 ? ldexp(1.0, -149) : ldexp(1.0, (e - 1 > -126 ? e - 1 : -126) - 23);
            double err = fabs((double)y - r) / ulp;
            p.sum += err;
            if (err > p.max) {
                p.max = err;
                p.worst = i;
            }
        }
        part[omp_get_thread_num()] = p;
    }
    double seconds = omp_get_wtime() - t0;

    /* merge in thread order: static chunks ascend with the thread number, so strict > keeps the first */
    long long n = 0, nonfinite = 0, cr = 0, worst = -1;
    double sum = 0.0, max = -1.0;
    for (int t = 0; t < nthreads; t++) {
        n += part[t].n;
        nonfinite += part[t].nonfinite;
        cr += part[t].cr;
        sum += part[t].sum;
        if (part[t].max > max) {
            max = part[t].max;
            worst = part[t].worst;
        }
    }
    free(part);

    printf("{\"lo\": %lld, \"hi\": %lld, \"inputs\": %lld, \"threads\": %d, \"nonfinite\": %lld, ", lo, hi, n,
           nthreads, nonfinite);
    if (worst >= 0) {
        uint32_t wb = worst < nneg ? (uint32_t)(-lo - worst) | 0x80000000u : (uint32_t)(pos0 + (worst - nneg));
        printf("\"max_ulp\": %.17g, \"worst_x\": %.9g, \"worst_bits\": \"0x%08x\", \"mean_ulp\": %.17g, ", max,
               (double)from_bits(wb), (unsigned)wb, sum / (double)(n - nonfinite));
    } else {
        printf("\"max_ulp\": null, \"worst_x\": null, \"worst_bits\": null, \"mean_ulp\": null, ");
    }
    printf("\"cr\": %lld, \"cr_frac\": %.17g, \"seconds\": %.6f}\n", cr, n ? (double)cr / (double)n : 0.0,
           seconds);
    return 0;
}
