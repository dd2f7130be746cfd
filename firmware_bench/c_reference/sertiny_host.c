/* sertiny_host.c: see sertiny_host.h. */
#include "sertiny_host.h"

#include <math.h>

int32_t sertiny_requantize_value(int32_t q, sertiny_qparams from, sertiny_qparams to,
                                 int32_t lo, int32_t hi) {
  /* Same arithmetic as sertiny.runtime.tflite: dequantise in float32, divide in double,
   * round half to even (rint in the default rounding mode, like numpy.round). Any other
   * order would differ from the Python path by one LSB on ties. */
  float value = sertiny_dequantize(q, from);
  double r = rint((double)value / (double)to.scale) + (double)to.zero_point;
  if (r < lo) return lo;
  if (r > hi) return hi;
  return (int32_t)r;
}

void sertiny_requantize_i8(const int8_t *src, sertiny_qparams from, int8_t *dst,
                           sertiny_qparams to, int n) {
  for (int i = 0; i < n; ++i) {
    dst[i] = (int8_t)sertiny_requantize_value(src[i], from, to, INT8_MIN, INT8_MAX);
  }
}

void sertiny_requantize_i16(const int16_t *src, sertiny_qparams from, int16_t *dst,
                            sertiny_qparams to, int n) {
  for (int i = 0; i < n; ++i) {
    dst[i] = (int16_t)sertiny_requantize_value(src[i], from, to, INT16_MIN, INT16_MAX);
  }
}

void sertiny_pool_init(sertiny_pool *pool, float *acc, int hidden) {
  pool->hidden = hidden;
  pool->count = 0;
  pool->max = -INFINITY;
  pool->sum = 0.0f;
  pool->acc = acc;
  for (int i = 0; i < hidden; ++i) acc[i] = 0.0f;
}

void sertiny_pool_add(sertiny_pool *pool, const float *u, const float *h) {
  float score = 0.0f;
  for (int i = 0; i < pool->hidden; ++i) score += u[i] * h[i];
  if (score > pool->max) {
    /* A new max: rescale what was accumulated against the old one (exp(-inf) = 0 on
     * the first frame), so no exp ever overflows whatever the scores. */
    float rescale = expf(pool->max - score);
    pool->sum = pool->sum * rescale + 1.0f;
    for (int i = 0; i < pool->hidden; ++i) pool->acc[i] = pool->acc[i] * rescale + h[i];
    pool->max = score;
  } else {
    float w = expf(score - pool->max);
    pool->sum += w;
    for (int i = 0; i < pool->hidden; ++i) pool->acc[i] += w * h[i];
  }
  pool->count += 1;
}

int sertiny_pool_context(const sertiny_pool *pool, float *context) {
  if (pool->count == 0) return -1;
  for (int i = 0; i < pool->hidden; ++i) context[i] = pool->acc[i] / pool->sum;
  return 0;
}

void sertiny_stats_init(sertiny_stats *stats, float *storage, int n_features, float eps) {
  stats->n_features = n_features;
  stats->count = 0;
  stats->eps = eps;
  stats->sum = storage;
  stats->sum_sq = storage + n_features;
  stats->delta_sum_sq = storage + 2 * n_features;
  stats->last = storage + 3 * n_features;
  for (int i = 0; i < 4 * n_features; ++i) storage[i] = 0.0f;
}

void sertiny_stats_add(sertiny_stats *stats, const float *frame) {
  for (int i = 0; i < stats->n_features; ++i) {
    float x = frame[i];
    stats->sum[i] += x;
    stats->sum_sq[i] += x * x;
    if (stats->count > 0) {
      float d = x - stats->last[i];
      stats->delta_sum_sq[i] += d * d;
    }
    stats->last[i] = x;
  }
  stats->count += 1;
}

static float soft_sqrt(float v, float eps) { return v / sqrtf(v + eps); }

int sertiny_stats_values(const sertiny_stats *stats, const int *order, int n_order, float *out) {
  if (stats->count == 0) return -1;
  int f = stats->n_features;
  float n = (float)stats->count, pairs = (float)(stats->count > 1 ? stats->count - 1 : 1);
  for (int s = 0; s < n_order; ++s) {
    for (int i = 0; i < f; ++i) {
      float mean = stats->sum[i] / n, value;
      if (order[s] == SERTINY_STAT_MEAN) {
        value = mean;
      } else if (order[s] == SERTINY_STAT_STD) {
        float var = stats->sum_sq[i] / n - mean * mean;
        value = soft_sqrt(var > 0.0f ? var : 0.0f, stats->eps);
      } else {
        value = soft_sqrt(stats->delta_sum_sq[i] / pairs, stats->eps);
      }
      out[s * f + i] = value;
    }
  }
  return 0;
}

void sertiny_classify(const sertiny_head *head, const float *context, float *scratch, float *probs) {
  for (int i = 0; i < head->hidden; ++i) {
    scratch[i] = context[i] * head->bn_scale[i] + head->bn_shift[i];
  }
  float max_logit = -INFINITY;
  for (int c = 0; c < head->classes; ++c) {
    float logit = head->dense_bias[c];
    for (int i = 0; i < head->hidden; ++i) logit += scratch[i] * head->dense_kernel[i * head->classes + c];
    probs[c] = logit;
    if (logit > max_logit) max_logit = logit;
  }
  float total = 0.0f;
  for (int c = 0; c < head->classes; ++c) {
    probs[c] = expf(probs[c] - max_logit);
    total += probs[c];
  }
  for (int c = 0; c < head->classes; ++c) probs[c] /= total;
}
