/*
 * replay_trace: check sertiny_host against the Python host loop.
 *
 * Reads a trace written by sertiny.export.creference.write_host_trace (every invoke's raw
 * model outputs, the state inputs Python fed the next invoke, the final probabilities),
 * redoes the hand-over, pooling and head with sertiny_host, and compares:
 * state inputs must match exactly; probabilities to within --tol (default 1e-5).
 *
 *   usage: replay_trace TRACE_FILE [TOL]      exit 0 when everything matches
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sertiny_host.h"

#define MAX_STATES 4
#define MAX_VALUES 65536

typedef struct {
  char name[16];
  sertiny_qparams q;
} named_qparams;

static int expect(FILE *f, const char *word) {
  char token[64];
  if (fscanf(f, "%63s", token) != 1 || strcmp(token, word) != 0) {
    fprintf(stderr, "trace: expected '%s', got '%s'\n", word, token);
    return -1;
  }
  return 0;
}

static int read_floats(FILE *f, float *out, int max) {
  int n;
  if (fscanf(f, "%d", &n) != 1 || n > max) return -1;
  for (int i = 0; i < n; ++i)
    if (fscanf(f, "%f", &out[i]) != 1) return -1;
  return n;
}

static int read_ints(FILE *f, int32_t *out, int max) {
  int n;
  if (fscanf(f, "%d", &n) != 1 || n > max) return -1;
  for (int i = 0; i < n; ++i) {
    long v;
    if (fscanf(f, "%ld", &v) != 1) return -1;
    out[i] = (int32_t)v;
  }
  return n;
}

static const sertiny_qparams *find_q(const named_qparams *table, int n, const char *name) {
  for (int i = 0; i < n; ++i)
    if (strcmp(table[i].name, name) == 0) return &table[i].q;
  fprintf(stderr, "trace: no quantisation for '%s'\n", name);
  exit(2);
}

/* The output tensor a state input is fed from (h2 is h2_seq's last row). */
static const char *feedback_source(const char *state) {
  return strcmp(state, "h2") == 0 ? "h2_seq" : state;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s TRACE_FILE [TOL]\n", argv[0]);
    return 2;
  }
  double tol = argc > 2 ? atof(argv[2]) : 1e-5;
  FILE *f = fopen(argv[1], "r");
  if (!f) {
    perror(argv[1]);
    return 2;
  }
  int version, n_features, hidden, classes, chunk, invokes, bits;
  if (expect(f, "sertiny-host-trace") || fscanf(f, "%d", &version) != 1 || version < 1 || version > 2 ||
      expect(f, "dims") ||
      fscanf(f, "%d %d %d %d %d %d", &n_features, &hidden, &classes, &chunk, &invokes, &bits) != 6) {
    fprintf(stderr, "trace: bad header\n");
    return 2;
  }
  int32_t lo = bits == 8 ? INT8_MIN : INT16_MIN, hi = bits == 8 ? INT8_MAX : INT16_MAX;

  /* "states h1 c1 h2 c2" (or "h2 c2" for LSTM-SA): read names up to the first "qin". */
  char states[MAX_STATES][16];
  int n_states = 0;
  char token[64];
  expect(f, "states");
  while (fscanf(f, "%15s", token) == 1 && strcmp(token, "qin") != 0) {
    if (n_states == MAX_STATES) {
      fprintf(stderr, "trace: more than %d states\n", MAX_STATES);
      return 2;
    }
    memcpy(states[n_states++], token, sizeof states[0]);
  }
  named_qparams qin[MAX_STATES], qout[MAX_STATES + 1];
  int n_qout = 0;
  for (int i = 0; i < n_states; ++i) {
    if (i > 0) expect(f, "qin");
    if (fscanf(f, "%15s %f %d", qin[i].name, &qin[i].q.scale, &qin[i].q.zero_point) != 3) return 2;
  }
  for (int i = 0; i < n_states; ++i) { /* h2_seq plus every other state */
    expect(f, "qout");
    if (fscanf(f, "%15s %f %d", qout[n_qout].name, &qout[n_qout].q.scale, &qout[n_qout].q.zero_point) != 3) return 2;
    ++n_qout;
  }

  static float u[MAX_VALUES], bn_scale[MAX_VALUES], bn_shift[MAX_VALUES], kernel[MAX_VALUES], bias[MAX_VALUES];
  float *head_arrays[] = {u, bn_scale, bn_shift, kernel, bias};
  for (int i = 0; i < 5; ++i) {
    if (expect(f, "head") || fscanf(f, "%63s", token) != 1 || read_floats(f, head_arrays[i], MAX_VALUES) < 0) return 2;
  }
  /* Version 2: the head also reads the frames' statistics (after the context). */
  int order[3], n_order = 0;
  float eps = 0.0f;
  if (version == 2) {
    if (expect(f, "stats") || fscanf(f, "%f %d", &eps, &n_order) != 2 || n_order < 1 || n_order > 3) return 2;
    for (int s = 0; s < n_order; ++s)
      if (fscanf(f, "%d", &order[s]) != 1) return 2;
  }
  sertiny_head head = {hidden + n_order * n_features, classes, u, bn_scale, bn_shift, kernel, bias};
  static float stats_storage[MAX_VALUES], frames[MAX_VALUES];
  sertiny_stats stats;
  sertiny_stats_init(&stats, stats_storage, n_features, eps);

  static float acc[MAX_VALUES], h[MAX_VALUES], context[MAX_VALUES], scratch[MAX_VALUES];
  static int32_t outputs[MAX_STATES + 1][MAX_VALUES], handed[MAX_VALUES], expected[MAX_VALUES];
  char out_names[MAX_STATES + 1][16];
  sertiny_pool pool;
  sertiny_pool_init(&pool, acc, hidden);
  long checked = 0, mismatches = 0;

  for (int inv = 0; inv < invokes; ++inv) {
    int valid;
    if (expect(f, "invoke") || fscanf(f, "%d", &valid) != 1) return 2;
    if (version == 2) {
      if (expect(f, "frames") || read_floats(f, frames, MAX_VALUES) != valid * n_features) return 2;
      for (int r = 0; r < valid; ++r) sertiny_stats_add(&stats, frames + r * n_features);
    }
    for (int o = 0; o < n_qout; ++o) {
      if (expect(f, "out") || fscanf(f, "%15s", out_names[o]) != 1 || read_ints(f, outputs[o], MAX_VALUES) < 0) return 2;
    }
    /* Pool the real frames of this chunk (a padded tail chunk's extra steps are skipped). */
    int seq = -1;
    for (int o = 0; o < n_qout; ++o)
      if (strcmp(out_names[o], "h2_seq") == 0) seq = o;
    const sertiny_qparams *q_seq = find_q(qout, n_qout, "h2_seq");
    for (int r = 0; r < valid; ++r) {
      for (int i = 0; i < hidden; ++i) h[i] = sertiny_dequantize(outputs[seq][r * hidden + i], *q_seq);
      sertiny_pool_add(&pool, u, h);
    }
    if (inv + 1 == invokes) break;
    /* State hand-over, compared with what Python fed the next invoke. */
    for (int s = 0; s < n_states; ++s) {
      const char *source = feedback_source(states[s]);
      int o = 0;
      while (strcmp(out_names[o], source) != 0) ++o;
      int n = strcmp(source, "h2_seq") == 0 ? hidden : (strcmp(states[s], "h1") == 0 || strcmp(states[s], "c1") == 0 ? n_features : hidden);
      const int32_t *src = strcmp(source, "h2_seq") == 0 ? outputs[o] + (chunk - 1) * hidden : outputs[o];
      for (int i = 0; i < n; ++i)
        handed[i] = sertiny_requantize_value(src[i], *find_q(qout, n_qout, source), *find_q(qin, n_states, states[s]), lo, hi);
      if (expect(f, "next") || fscanf(f, "%63s", token) != 1 || read_ints(f, expected, MAX_VALUES) != n) return 2;
      for (int i = 0; i < n; ++i, ++checked) mismatches += handed[i] != expected[i];
    }
  }
  float probs[256], want[256];
  if (sertiny_pool_context(&pool, context) != 0) {
    fprintf(stderr, "no frames pooled\n");
    return 1;
  }
  if (n_order > 0) sertiny_stats_values(&stats, order, n_order, context + hidden);
  sertiny_classify(&head, context, scratch, probs);
  if (expect(f, "probs") || read_floats(f, want, 256) != classes) return 2;
  double worst = 0.0;
  for (int c = 0; c < classes; ++c) worst = fmax(worst, fabs((double)probs[c] - (double)want[c]));
  fclose(f);
  printf("invokes %d, frames pooled %d, state values checked %ld, mismatches %ld, max |p_c - p_python| %.3g\n",
         invokes, pool.count, checked, mismatches, worst);
  return (mismatches == 0 && worst <= tol) ? 0 : 1;
}
