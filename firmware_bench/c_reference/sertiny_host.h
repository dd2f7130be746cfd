/*
 * sertiny_host: what microcontroller firmware does between invokes of a chunked
 * sertiny model (bundle variant "int8_chunk<K>" / "int16x8_chunk<K>").
 *
 * The TFLite Micro model holds only the LSTM recurrence over K frames. Around each
 * invoke the firmware:
 *   1. hands the LSTM states over: every output state tensor becomes the next input
 *      state tensor, requantised because the two tensors have their own scale and zero
 *      point (sertiny_requantize_*);
 *   2. pools attention online over LSTM2's outputs h2_seq (K x H per invoke): a running
 *      max, a running sum of exp(score - max) and the exp-weighted sum of h, rescaled
 *      when the max grows (sertiny_pool_*), so any chunking gives the full softmax;
 *   3. after the last frame: context = acc / sum, BatchNorm (scale/shift), dense layer,
 *      softmax (sertiny_classify).
 *
 * This mirrors sertiny/runtime/chunked.py operation for operation; the requantisation is
 * bit-exact with it (float32 dequantise, double divide, round half to even). Plain C99,
 * no allocation, float32 arithmetic (a Cortex-M4F/M7 FPU).
 */
#ifndef SERTINY_HOST_H_
#define SERTINY_HOST_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A tensor's affine quantisation: real = scale * (q - zero_point). */
typedef struct {
  float scale;
  int32_t zero_point;
} sertiny_qparams;

/* One quantised value moved from one tensor's quantisation to another's, clamped to
 * [lo, hi] (the destination type's range). */
int32_t sertiny_requantize_value(int32_t q, sertiny_qparams from, sertiny_qparams to,
                                 int32_t lo, int32_t hi);

void sertiny_requantize_i8(const int8_t *src, sertiny_qparams from, int8_t *dst,
                           sertiny_qparams to, int n);
void sertiny_requantize_i16(const int16_t *src, sertiny_qparams from, int16_t *dst,
                            sertiny_qparams to, int n);

static inline float sertiny_dequantize(int32_t q, sertiny_qparams p) {
  return (float)(q - p.zero_point) * p.scale;
}

/* Online softmax attention pooling over frames. `acc` is caller-owned storage of
 * `hidden` floats (no malloc on the device). */
typedef struct {
  int hidden;
  int count;    /* frames pooled so far */
  float max;    /* running max of the scores */
  float sum;    /* sum of exp(score - max) */
  float *acc;   /* sum of exp(score - max) * h */
} sertiny_pool;

void sertiny_pool_init(sertiny_pool *pool, float *acc, int hidden);
/* Add one frame's LSTM2 output h (hidden floats), scored with the attention vector u. */
void sertiny_pool_add(sertiny_pool *pool, const float *u, const float *h);
/* context = acc / sum; returns 0, or -1 if no frame was pooled. */
int sertiny_pool_context(const sertiny_pool *pool, float *context);

/* Running per-feature statistics of the normalised frames fed to the model, for a head
 * that reads them after the attention context (family res_lstm_sa_stats): the mean, the
 * standard deviation and the RMS frame-to-frame difference over every frame added, each
 * root taken as soft_sqrt(v) = v / sqrt(v + eps). `storage` is caller-owned: 4 *
 * n_features floats. Mirrors OnlineStatistics in sertiny/runtime/chunked.py. */
enum { SERTINY_STAT_MEAN = 0, SERTINY_STAT_STD = 1, SERTINY_STAT_DELTA_RMS = 2 };

typedef struct {
  int n_features;
  int count;   /* frames added so far */
  float eps;
  float *sum, *sum_sq, *delta_sum_sq, *last;
} sertiny_stats;

void sertiny_stats_init(sertiny_stats *stats, float *storage, int n_features, float eps);
/* Add one frame (n_features floats, normalised as the model's input before quantisation). */
void sertiny_stats_add(sertiny_stats *stats, const float *frame);
/* The statistics listed in `order` (n_order SERTINY_STAT_* values), one block of
 * n_features each, into out; returns 0, or -1 if no frame was added. */
int sertiny_stats_values(const sertiny_stats *stats, const int *order, int n_order, float *out);

/* The classifier head that runs on the host: BatchNorm as scale/shift, dense layer
 * (kernel row-major [hidden][classes]). `hidden` is the width the head reads: the
 * attention context's H, or H + S * F for a head that also reads S statistics
 * (sertiny_stats_values written right after the context). */
typedef struct {
  int hidden;
  int classes;
  const float *attention_u;
  const float *bn_scale;
  const float *bn_shift;
  const float *dense_kernel;
  const float *dense_bias;
} sertiny_head;

/* context (hidden) -> probabilities (classes); `scratch` holds `hidden` floats. */
void sertiny_classify(const sertiny_head *head, const float *context, float *scratch, float *probs);

#ifdef __cplusplus
}
#endif

#endif /* SERTINY_HOST_H_ */
