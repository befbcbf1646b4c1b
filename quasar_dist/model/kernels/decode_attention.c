/* Decode attention on the CPU: one query token per row, over each row's live cache entries.
 *
 *   out[b, h*G + g] = sum_j softmax_j(scale * q[b, h*G + g] . k[b, h, j] + bias[b, j]) v[b, h, j]
 *   for j < length[b]
 *
 * q and out are [B, Hkv * G, D] contiguous; k and v are the cache's head-major layout
 * [B, Hkv, N, D] with any row and head strides (token stride D). bias [B, N] (row stride
 * bias_sb) may be NULL (live entries are a prefix, guidance off). Each (row, kv head) reads its
 * keys and values once for all G queries of its group, and only up to the row's own length
 * (the batched-matmul form reads every row to the batch's longest). Rows and heads are split
 * over the OpenMP threads of the torch runtime the library is loaded into (same libgomp).
 * With AVX2 and D a multiple of 8: eight keys' dot products are reduced together, exp is
 * Cephes' expf polynomial (~1 ulp) on eight lanes, and the weighted sum of values keeps its
 * accumulators in registers; otherwise plain C of the same arithmetic. -inf scores give 0. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

#define MAX_GROUP 16
#define EXP_HI 88.3762626647949f
#define EXP_LO -87.3365447505531f
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693359375f
#define LN2_LO -2.12194440e-4f

static inline float exp_scalar(float x) {
    /* exp(x) = 2^n exp(r), r = x - n ln 2 in [-ln2/2, ln2/2]; below EXP_LO (denormals, -inf): 0 */
    if (!(x >= EXP_LO)) return 0.0f;
    if (x > EXP_HI) x = EXP_HI;
    float n = floorf(x * LOG2E + 0.5f);
    float r = x - n * LN2_HI - n * LN2_LO;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float dot_scalar(const float *a, const float *b, int64_t dim) {
    float s = 0.0f;
    for (int64_t d = 0; d < dim; ++d) s += a[d] * b[d];
    return s;
}

#ifdef __AVX2__
static inline __m256 exp8(__m256 x) {
    const __m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(EXP_LO), _CMP_NGE_UQ);  /* also NaN, -inf */
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(EXP_LO)), _mm256_set1_ps(EXP_HI));
    __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(LOG2E), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(bits)));
}

/* [sum(a0), ..., sum(a7)] */
static inline __m256 sums8(__m256 a0, __m256 a1, __m256 a2, __m256 a3, __m256 a4, __m256 a5, __m256 a6, __m256 a7) {
    __m256 t0 = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    __m256 t1 = _mm256_hadd_ps(_mm256_hadd_ps(a4, a5), _mm256_hadd_ps(a6, a7));
    return _mm256_add_ps(_mm256_permute2f128_ps(t0, t1, 0x20), _mm256_permute2f128_ps(t0, t1, 0x31));
}

static inline __m256 dot8(const float *q, const float *k, int64_t dim) {
    /* q . k_j for the 8 keys k, k + dim, ..., k + 7 dim */
    __m256 acc[8];
    for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t d = 0; d < dim; d += 8) {
        const __m256 qd = _mm256_loadu_ps(q + d);
        for (int i = 0; i < 8; ++i) acc[i] = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k + i * dim + d), acc[i]);
    }
    return sums8(acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7]);
}
#endif

/* Scores of one query against n keys, softmaxed in place. */
static void softmax_scores(const float *q, const float *k, const float *bias, int64_t n, int64_t dim, float scale,
                           float *s) {
    int64_t j = 0;
#ifdef __AVX2__
    if (dim % 8 == 0) {
        const __m256 sc = _mm256_set1_ps(scale);
        for (; j + 8 <= n; j += 8) {
            __m256 x = _mm256_mul_ps(dot8(q, k + j * dim, dim), sc);
            if (bias) x = _mm256_add_ps(x, _mm256_loadu_ps(bias + j));
            _mm256_storeu_ps(s + j, x);
        }
    }
#endif
    for (; j < n; ++j) s[j] = dot_scalar(q, k + j * dim, dim) * scale + (bias ? bias[j] : 0.0f);
    float top = -INFINITY;
    for (j = 0; j < n; ++j) top = s[j] > top ? s[j] : top;
    float total = 0.0f;
    j = 0;
#ifdef __AVX2__
    __m256 total8 = _mm256_setzero_ps();
    for (; j + 8 <= n; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), _mm256_set1_ps(top)));
        _mm256_storeu_ps(s + j, e);
        total8 = _mm256_add_ps(total8, e);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, total8);
    for (int i = 0; i < 8; ++i) total += lanes[i];
#endif
    for (; j < n; ++j) {
        s[j] = exp_scalar(s[j] - top);
        total += s[j];
    }
    const float inv = 1.0f / total;
    for (j = 0; j < n; ++j) s[j] *= inv;
}

/* out [dim] = sum_j p[j] v[j] */
static void weighted_values(const float *p, const float *v, int64_t n, int64_t dim, float *out) {
    int64_t d = 0;
#ifdef __AVX2__
    for (; d + 32 <= dim; d += 32) {  /* four accumulators in registers per pass over the values */
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t j = 0; j < n; ++j) {
            const __m256 pj = _mm256_set1_ps(p[j]);
            const float *vj = v + j * dim + d;
            a0 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj), a0);
            a1 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 8), a1);
            a2 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 16), a2);
            a3 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 24), a3);
        }
        _mm256_storeu_ps(out + d, a0);
        _mm256_storeu_ps(out + d + 8, a1);
        _mm256_storeu_ps(out + d + 16, a2);
        _mm256_storeu_ps(out + d + 24, a3);
    }
#endif
    for (int64_t x = d; x < dim; ++x) out[x] = 0.0f;
    for (int64_t j = 0; j < n; ++j)
        for (int64_t x = d; x < dim; ++x) out[x] += p[j] * v[j * dim + x];
}

int decode_attention(const float *q, const float *k, const float *v, const float *bias, const int64_t *length,
                     float *out, int64_t rows, int64_t kv_heads, int64_t groups, int64_t dim, int64_t capacity,
                     int64_t k_row, int64_t k_head, int64_t v_row, int64_t v_head, int64_t bias_row, float scale,
                     int threads) {
    if (groups > MAX_GROUP || groups < 1) return 1;
    for (int64_t b = 0; b < rows; ++b)
        if (length[b] < 1 || length[b] > capacity) return 2;
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        float *scores = malloc(sizeof(float) * capacity);
        if (!scores) {
#pragma omp atomic write
            failed = 3;
        }
#pragma omp for schedule(dynamic, 4)
        for (int64_t item = 0; item < rows * kv_heads * groups; ++item) {
            if (!scores) continue;
            const int64_t b = item / (kv_heads * groups), h = (item / groups) % kv_heads;
            const float *kb = k + b * k_row + h * k_head, *vb = v + b * v_row + h * v_head;
            softmax_scores(q + item * dim, kb, bias ? bias + b * bias_row : NULL, length[b], dim, scale, scores);
            weighted_values(scores, vb, length[b], dim, out + item * dim);
        }
        free(scores);
    }
    return failed;
}
