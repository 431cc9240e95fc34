/* test_tn_calib.c — `sbpc tune --quick` (tn_measure) writes a calibration
 * that the one calibration reader (plan_calib_parse / plan_calib_load,
 * planner/calib_read.c) accepts, with sane measured values; malformed
 * calibrations are refused with the offending field named and the planner's
 * constants left untouched; a calibration without the device's peak is
 * absolute (its rates replace the device's, a measured shape runs at its
 * measured rate), one with eff_max relative; SBPC_CALIBRATION is the default
 * file. */
#include "cu.h"
#include "tune/tune.h"
#include "tune/tn_int.h"
#include "planner/plan_int.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* extend: `tune --from path` with a model's shape (no probe: no
 * run_program) keeps path's measurements and generic shapes, adds the
 * model's shape measured, and refits; a calibration measured on other
 * ranks is refused */
static void extend(const char *path, double ko) {
  char out[] = "/tmp/sbpc-calib-ext-XXXXXX";
  int fd = mkstemp(out);
  CU_ASSERT_FATAL(fd >= 0);
  close(fd);
  tn_shape sh = {48, 80, 24};
  tn_opts o = {.quick = 1, .shapes = &sh, .nshapes = 1, .model = "m.sbp", .from = path};
  CU_ASSERT_EQUAL_FATAL(tn_measure(&o, out), 0);
  size_t la, lb;
  char *ta = read_file(path, 1 << 20, &la), *tb = read_file(out, 1 << 20, &lb);
  cJSON *a = cJSON_Parse(ta), *b = cJSON_Parse(tb);
  CU_ASSERT_DOUBLE_EQUAL(cJSON_GetObjectItem(b, "kernel_overhead_s")->valuedouble, ko, 1e-15);
  CU_ASSERT(cJSON_Compare(cJSON_GetObjectItem(a, "memory"), cJSON_GetObjectItem(b, "memory"), true));
  const cJSON *sa = cJSON_GetObjectItem(cJSON_GetObjectItem(a, "gemm"), "shapes"),
              *sb = cJSON_GetObjectItem(cJSON_GetObjectItem(b, "gemm"), "shapes");
  CU_ASSERT_EQUAL(cJSON_GetArraySize(sb), cJSON_GetArraySize(sa) + 1);
  CU_ASSERT(cJSON_Compare(cJSON_GetArrayItem(sa, 0), cJSON_GetArrayItem(sb, 0), true));
  const cJSON *last = cJSON_GetArrayItem(sb, cJSON_GetArraySize(sb) - 1);
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(last, "from")->valuestring, "model");
  CU_ASSERT_EQUAL(cJSON_GetObjectItem(last, "m")->valueint, 48);
  CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(cJSON_GetObjectItem(b, "gemm"), "model")->valuestring, "m.sbp");
  plan_calib c;
  plan_calib_default(&c);
  CU_ASSERT(plan_calib_load(out, &c));
  cJSON_ReplaceItemInObject(a, "ranks", cJSON_CreateNumber(4)); /* measured on 4 ranks: not extended on 1 */
  char *t4 = cJSON_Print(a);
  FILE *f = fopen(out, "w");
  fputs(t4, f), fclose(f);
  o.from = out;
  CU_ASSERT_NOT_EQUAL(tn_measure(&o, "/dev/null"), 0);
  cJSON_free(t4), cJSON_Delete(a), cJSON_Delete(b), free(ta), free(tb);
  unlink(out);
}

static void tune_roundtrip(void) {
  char path[] = "/tmp/sbpc-calib-XXXXXX";
  int fd = mkstemp(path);
  CU_ASSERT_FATAL(fd >= 0);
  close(fd);
  tn_opts o = {.quick = 1};
  CU_ASSERT_EQUAL_FATAL(tn_measure(&o, path), 0);
  size_t len;
  char *text = read_file(path, 1 << 20, &len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  char err[256];
  plan_calib pc;
  plan_calib_default(&pc);
  CU_ASSERT(plan_calib_parse(text, len, &pc, err, sizeof err));
  CU_ASSERT(pc.loaded);
  CU_ASSERT(pc.dev_flops > 1e6 && pc.dev_bw > 1e6 && pc.ngemm >= 4); /* no peak given: absolute */
  CU_ASSERT_DOUBLE_EQUAL(pc.workspace_bytes, 0, 0);
  cJSON *j = cJSON_Parse(text);
  const cJSON *g = cJSON_GetObjectItem(j, "gemm");
  CU_ASSERT(cJSON_GetArraySize(cJSON_GetObjectItem(g, "shapes")) >= 4);
  CU_ASSERT(cJSON_GetObjectItem(g, "fit_peak_flops_per_s")->valuedouble > 1e6);
  CU_ASSERT(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "memory"), "copy_bytes_per_s")->valuedouble > 1e6);
  double ko = cJSON_GetObjectItem(j, "kernel_overhead_s")->valuedouble;
  CU_ASSERT(ko > 0 && ko < 1e-2);
  CU_ASSERT_PTR_NULL(cJSON_GetObjectItem(g, "eff_max")); /* no peak given: no efficiency */
  cJSON_Delete(j);
  free(text);
  plan_calib c;
  plan_calib_default(&c);
  CU_ASSERT(plan_calib_load(path, &c));
  CU_ASSERT_DOUBLE_EQUAL(c.kernel_overhead_s, ko, 1e-15);
  extend(path, ko);
  unlink(path);
}

static void refusals(void) {
  static const struct {
    const char *text, *want;
  } cases[] = {
      {"", "JSON object"},
      {"{\"format\":\"x\"}", "not a calibration"},
      {"{\"format\":\"sbpc-calibration\",\"kernel_overhead_s\":-1}", "kernel_overhead_s"},
      {"{\"format\":\"sbpc-calibration\",\"gemm\":[]}", "'gemm' must be an object"},
      {"{\"format\":\"sbpc-calibration\",\"gemm\":{\"shapes\":[{\"m\":0}]}}", "gemm.shapes[0].m"},
      {"{\"format\":\"sbpc-calibration\",\"collectives\":{\"by_group_size\":[{\"n\":4,\"bus_bw\":1,\"alpha_s\":0},"
       "{\"n\":2,\"bus_bw\":1,\"alpha_s\":0}]}}",
       "above the previous"},
      {"{\"format\":\"sbpc-calibration\",\"collectives\":{\"measurements\":[{\"op\":\"all_gather\",\"n\":2,"
       "\"bus_bw\":1},{\"op\":\"reduce_scatter\",\"n\":2,\"bus_bw\":1},{\"op\":\"all_gather\",\"n\":2,\"bus_bw\":1}]}}",
       "measurements[2].n' must be an integer above the previous all_gather"},
      {"{\"format\":\"sbpc-calibration\",\"collectives\":{\"measurements\":[{\"op\":\"reduce_scatter\",\"n\":2}]}}",
       "measurements[0].bus_bw"},
      {"{\"format\":\"sbpc-calibration\",\"memory\":{\"bandwidth_eff\":7}}", "bandwidth_eff"},
      {"{\"format\":\"sbpc-calibration\",\"executor\":{\"forward_scale\":0}}", "executor.forward_scale"},
      {"{\"format\":\"sbpc-calibration\",\"executor\":{\"kernel_s\":2}}", "executor.kernel_s"},
      {"{\"format\":\"sbpc-calibration\",\"executor\":{\"measured\":{\"bubble_s\":-1}}}", "executor.measured.bubble_s"},
      {"{\"format\":\"sbpc-calibration\",\"executor\":{\"reference\":3}}", "executor.reference"},
      {"{\"format\":\"sbpc-calibration\",\"executor\":{\"backward_kernel_s\":-1e-6}}", "executor.backward_kernel_s"},
      {"{\"format\":\"sbpc-calibration\",\"executor\":{\"step_overhead_s\":\"1\"}}", "executor.step_overhead_s"},
      {"{\"format\":\"sbpc-calibration\",\"executor\":{\"second\":[]}}", "executor.second"},
      {"{\"format\":\"sbpc-calibration\",\"executor\":{\"coll_latency_s\":2}}", "executor.coll_latency_s"},
      {"{\"format\":\"sbpc-calibration\",\"executor\":{\"zero12_latency_s\":-1}}", "executor.zero12_latency_s"},
      {"{\"format\":\"sbpc-calibration\",\"executor\":{\"zero2\":{\"steps\":0}}}", "executor.zero2.steps"},
      {"{\"format\":\"sbpc-calibration\",\"executor\":{\"zero3\":{\"reference\":1}}}", "executor.zero3.reference"},
      {"{\"format\":\"sbpc-calibration\",\"executor\":{\"second\":{\"measured\":{\"step_s\":-2}}}}",
       "executor.second.measured.step_s"},
      {"{\"format\":\"sbpc-calibration\",\"executor\":{\"fix\":2}}", "executor.fix"},
      {"{\"format\":\"sbpc-calibration\",\"executor\":{\"model\":[]}}", "executor.model"},
      {"{\"format\":\"sbpc-calibration\",\"executor\":{\"model\":{\"seq\":0}}}", "executor.model.seq"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char err[256];
    plan_calib c, d;
    plan_calib_default(&c);
    d = c;
    CU_ASSERT_FALSE(plan_calib_parse(cases[i].text, strlen(cases[i].text), &c, err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].want));
    CU_ASSERT_EQUAL(memcmp(&c, &d, sizeof c), 0); /* untouched on error */
  }
}

static void absolute_and_relative(void) {
  static const char abs_text[] =
      "{\"format\":\"sbpc-calibration\",\"workspace_bytes\":0,\"gemm\":{\"half_dim\":64,"
      "\"fit_peak_flops_per_s\":4e10,\"shapes\":[{\"m\":256,\"n\":192,\"k\":64,\"seconds\":1e-4,"
      "\"flops_per_s\":1e10}]},\"memory\":{\"copy_bytes_per_s\":8e9,\"kernel_bytes_per_s\":6e9}}";
  char err[256];
  plan_calib c;
  plan_calib_default(&c);
  CU_ASSERT_FATAL(plan_calib_parse(abs_text, strlen(abs_text), &c, err, sizeof err));
  CU_ASSERT_DOUBLE_EQUAL(c.dev_flops, 4e10, 1);
  CU_ASSERT_DOUBLE_EQUAL(c.dev_bw, 6e9, 1); /* the kernel bandwidth, not copy */
  CU_ASSERT_DOUBLE_EQUAL(c.workspace_bytes, 0, 0);
  CU_ASSERT_EQUAL(c.ngemm, 1);
  CU_ASSERT_DOUBLE_EQUAL(plan_gemm_eff(&c, 256, 192, 64), 0.25, 1e-12); /* measured: 1e10 of 4e10 */
  CU_ASSERT_DOUBLE_EQUAL(plan_gemm_eff(&c, 512, 512, 512), pow(512.0 / 576, 3), 1e-12); /* the fitted curve */
  plan_dev d = {1e12, 1e12, 1e9};                                                        /* ignored: absolute */
  CU_ASSERT_DOUBLE_EQUAL(plan_kernel_time(&c, &d, 2e10, 0.5, 0, 0, PLAN_FWD), 1.0, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(plan_mem_time(&c, &d, 6e9), 1.0, 1e-12);
  /* with the datasheet peak given to tune (eff_max), the file is relative */
  static const char rel_text[] = "{\"format\":\"sbpc-calibration\",\"gemm\":{\"eff_max\":0.5,"
                                 "\"fit_peak_flops_per_s\":4e10,\"half_dim\":0},\"memory\":{\"bandwidth_eff\":0.5}}";
  plan_calib r;
  plan_calib_default(&r);
  CU_ASSERT_FATAL(plan_calib_parse(rel_text, strlen(rel_text), &r, err, sizeof err));
  CU_ASSERT_DOUBLE_EQUAL(r.dev_flops, 0, 0);
  CU_ASSERT_DOUBLE_EQUAL(plan_kernel_time(&r, &d, 1e12, plan_gemm_eff(&r, 1, 1, 1), 0, 0, PLAN_FWD), 2.0, 1e-12);
}

static const plan_dev d = {1e12, 1e12, 1e9};

/* parse_executor: text over the defaults into c; the forward roofline of
 * 1 TFLOP at 0.5 before it */
static double parse_executor(const char *text, plan_calib *c) {
  char err[256];
  plan_calib_default(c);
  double f = plan_kernel_time(c, &d, 1e12, 0.5, 0, 0, PLAN_FWD);
  CU_ASSERT_FATAL(plan_calib_parse(text, strlen(text), c, err, sizeof err));
  return f;
}

/* the executor section scales the rooflines per pass and sets the per-kernel cost */
static void executor_section(void) {
  static const char text[] = "{\"format\":\"sbpc-calibration\",\"kernel_overhead_s\":1e-7,\"executor\":{"
                             "\"reference\":\"dp=2\",\"forward_scale\":2,\"backward_scale\":3,\"optimizer_scale\":4,"
                             "\"kernel_s\":1e-5,\"dp_comm_scale\":5,\"measured\":{\"step_s\":0.01}}}";
  plan_calib c;
  double f = parse_executor(text, &c);
  CU_ASSERT_DOUBLE_EQUAL(c.kernel_overhead_s, 1e-5, 1e-18); /* the executor's, not the bare call's */
  CU_ASSERT_DOUBLE_EQUAL(plan_kernel_time(&c, &d, 1e12, 0.5, 0, 0, PLAN_FWD), 2 * f, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(plan_kernel_time(&c, &d, 1e12, 0.5, 0, 3, PLAN_BWD), 3 * f + 3e-5, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(c.exec_scale[PLAN_OPT], 4, 0);
  CU_ASSERT_DOUBLE_EQUAL(c.exec_scale[PLAN_COMM], 5, 0);
  CU_ASSERT_DOUBLE_EQUAL(c.rt.grad_overlap, 0, 0); /* what was measured is what stays exposed */
  CU_ASSERT(c.exec_per_param);
}

/* the two-reference fit's terms: a cost per counted kernel for each pass
 * (over kernel_s), idle time per step and per micro-batch */
static void executor_two_references(void) {
  static const char text[] = "{\"format\":\"sbpc-calibration\",\"kernel_overhead_s\":1e-7,\"executor\":{"
                             "\"forward_scale\":2,\"backward_scale\":3,\"kernel_s\":0,\"forward_kernel_s\":4e-6,"
                             "\"backward_kernel_s\":6e-6,\"micro_overhead_s\":1e-3,\"step_overhead_s\":5e-4,"
                             "\"second\":{\"reference\":\"dp=2 mbs=4 x1\",\"steps\":9,\"measured\":{\"step_s\":0.004}}}}";
  plan_calib c;
  double f = parse_executor(text, &c);
  CU_ASSERT_DOUBLE_EQUAL(plan_kernel_time(&c, &d, 1e12, 0.5, 0, 10, PLAN_FWD), 2 * f + 4e-5, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(plan_kernel_time(&c, &d, 1e12, 0.5, 0, 10, PLAN_BWD), 3 * f + 6e-5, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(plan_kernel_time(&c, &d, 0, 1, 0, 10, PLAN_OPT), 0, 1e-15); /* kernel_s: 0 */
  CU_ASSERT_DOUBLE_EQUAL(c.micro_overhead_s, 1e-3, 0);
  CU_ASSERT_DOUBLE_EQUAL(c.step_overhead_s, 5e-4, 0);
  CU_ASSERT(c.exec_kernel_s[PLAN_OPT] < 0); /* not measured: the optimizer has no per-tensor cost */
  static const char opt[] = "{\"format\":\"sbpc-calibration\",\"executor\":{\"optimizer_kernel_s\":2e-6}}";
  parse_executor(opt, &c);
  CU_ASSERT_DOUBLE_EQUAL(c.exec_kernel_s[PLAN_OPT], 2e-6, 0);
}

/* the ZeRO-3 reference's wait per collective: added to every ZeRO collective */
static void executor_coll_latency(void) {
  static const char text[] = "{\"format\":\"sbpc-calibration\",\"executor\":{\"coll_latency_s\":1e-4,"
                             "\"zero3\":{\"reference\":\"dp=2 zero=3\",\"steps\":5,\"measured\":{\"step_s\":0.02}}}}";
  char err[256];
  plan_calib c;
  plan_calib_default(&c);
  plan_link l = {1e9, 1e-6, 0};
  double before = plan_zero_coll_time(&c, IR_OP_ALL_GATHER, 1e6, 2, l, PLAN_ZERO_STEP);
  CU_ASSERT_FATAL(plan_calib_parse(text, strlen(text), &c, err, sizeof err));
  CU_ASSERT_DOUBLE_EQUAL(plan_zero_coll_time(&c, IR_OP_ALL_GATHER, 1e6, 2, l, PLAN_ZERO_STEP), before + 1e-4, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(plan_zero_coll_time(&c, IR_OP_ALL_GATHER, 0, 2, l, PLAN_ZERO_STEP), 0, 0); /* nothing moved */
  /* a tp activation's collective, waited for: the same wait; none on one device */
  double t = plan_coll_time(&c, IR_OP_ALL_REDUCE, 1e6, 2, l);
  CU_ASSERT(t > 0);
  CU_ASSERT_DOUBLE_EQUAL(plan_waited_coll_time(&c, IR_OP_ALL_REDUCE, 1e6, 2, l), t + 1e-4, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(plan_waited_coll_time(&c, IR_OP_ALL_REDUCE, 1e6, 1, l), 0, 0);
  /* ZeRO-1/2's collectives: coll_latency_s until the ZeRO-2 reference measured their own */
  double z12 = plan_zero_coll_time(&c, IR_OP_REDUCE_SCATTER, 1e6, 2, l, PLAN_ZERO_STEP | PLAN_ZERO_12);
  CU_ASSERT_DOUBLE_EQUAL(z12, plan_zero_coll_time(&c, IR_OP_REDUCE_SCATTER, 1e6, 2, l, PLAN_ZERO_STEP), 1e-15);
  static const char both[] = "{\"format\":\"sbpc-calibration\",\"executor\":{\"coll_latency_s\":1e-4,"
                             "\"zero12_latency_s\":3e-4,\"zero2\":{\"reference\":\"dp=2 zero=2\",\"steps\":5}}}";
  CU_ASSERT_FATAL(plan_calib_parse(both, strlen(both), &c, err, sizeof err));
  CU_ASSERT_DOUBLE_EQUAL(plan_zero_coll_time(&c, IR_OP_REDUCE_SCATTER, 1e6, 2, l, PLAN_ZERO_STEP | PLAN_ZERO_12),
                         z12 + 2e-4, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(plan_zero_coll_time(&c, IR_OP_ALL_GATHER, 1e6, 2, l, PLAN_ZERO_STEP), before + 1e-4, 1e-12);
}

/* the probe's reference as tune --plans re-runs it (machine drift): all
 * of fix, model and the measured step, or nothing */
static void executor_reference_record(void) {
  static const char text[] = "{\"format\":\"sbpc-calibration\",\"executor\":{\"fix\":\"dp=2,tp=1,mbs=4\","
                             "\"model\":{\"name\":\"tiny_gpt2\",\"params\":134912,\"global_batch\":8,\"seq\":32,"
                             "\"devices\":2},\"measured\":{\"step_s\":0.003}}}";
  static const char partial[] = "{\"format\":\"sbpc-calibration\",\"executor\":{\"fix\":\"dp=2\","
                                "\"measured\":{\"step_s\":0.003}}}";
  char err[256];
  plan_calib c;
  plan_calib_default(&c);
  CU_ASSERT_FATAL(plan_calib_parse(text, strlen(text), &c, err, sizeof err));
  CU_ASSERT(c.ref.have);
  CU_ASSERT_STRING_EQUAL(c.ref.fix, "dp=2,tp=1,mbs=4");
  CU_ASSERT_STRING_EQUAL(c.ref.model, "tiny_gpt2");
  CU_ASSERT(c.ref.params == 134912 && c.ref.batch == 8 && c.ref.seq == 32 && c.ref.devices == 2);
  CU_ASSERT_DOUBLE_EQUAL(c.ref.step_s, 0.003, 1e-15);
  plan_calib_default(&c);
  CU_ASSERT_FATAL(plan_calib_parse(partial, strlen(partial), &c, err, sizeof err));
  CU_ASSERT_FALSE(c.ref.have); /* no model: nothing to compare a run with */
}

/* a trace's phases per traced step, its attention kernels' seconds
 * (forward attention and backward attention_grad, not a recompute's) and
 * its optimizer calls */
static void trace_attention(void) {
  static const char text[] =
      "{\"traceEvents\":["
      "{\"ph\":\"X\",\"pid\":0,\"tid\":0,\"cat\":\"forward\",\"name\":\"attention\",\"ts\":0,\"dur\":1000},"
      "{\"ph\":\"X\",\"pid\":0,\"tid\":0,\"cat\":\"forward\",\"name\":\"attention_mask\",\"ts\":1000,\"dur\":100},"
      "{\"ph\":\"X\",\"pid\":0,\"tid\":0,\"cat\":\"forward\",\"name\":\"matmul\",\"ts\":1100,\"dur\":500},"
      "{\"ph\":\"X\",\"pid\":0,\"tid\":0,\"cat\":\"recompute\",\"name\":\"attention\",\"ts\":1600,\"dur\":300},"
      "{\"ph\":\"X\",\"pid\":0,\"tid\":0,\"cat\":\"backward\",\"name\":\"attention_grad (m0)\",\"ts\":1900,"
      "\"dur\":2000},"
      "{\"ph\":\"X\",\"pid\":0,\"tid\":0,\"cat\":\"optimizer\",\"name\":\"adamw\",\"ts\":3900,\"dur\":100},"
      "{\"ph\":\"X\",\"pid\":0,\"tid\":0,\"cat\":\"optimizer\",\"name\":\"adamw\",\"ts\":4000,\"dur\":100}"
      "],\"otherData\":{\"measured_step_s\":0.004,\"traced_steps\":2}}";
  char path[] = "/tmp/sbpc-test-trace-XXXXXX";
  int fd = mkstemp(path);
  CU_ASSERT_FATAL(fd >= 0);
  CU_ASSERT_FATAL(write(fd, text, sizeof text - 1) == (ssize_t)(sizeof text - 1));
  close(fd);
  tn_step m;
  memset(&m, 0, sizeof m);
  CU_ASSERT_FATAL(tn_measured_trace(path, &m));
  CU_ASSERT_DOUBLE_EQUAL(m.attn_s, 1.5e-3, 1e-12);                /* (1000 + 2000) us over 2 steps */
  CU_ASSERT_DOUBLE_EQUAL(m.phase[TN_FWD], 0.8e-3, 1e-12);         /* (1000 + 100 + 500) us / 2 */
  CU_ASSERT_DOUBLE_EQUAL(m.phase[TN_BWD], 1.15e-3, 1e-12);        /* recompute and backward */
  CU_ASSERT_DOUBLE_EQUAL(m.phase[TN_OPT], 0.1e-3, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(m.opt_calls, 1, 0);                      /* 2 optimizer slices over 2 steps */
  CU_ASSERT_DOUBLE_EQUAL(m.phase[TN_BUBBLE], 1.95e-3, 1e-12);     /* the rest: (8 ms of 2 steps - 4.1 busy) / 2 */
  unlink(path);
}

/* with the executor's step slices: each step on its own, the mean over the
 * middle half by length (a 10 ms step of a 9 ms wait among 1 ms ones does
 * not count), a slice cut where its step ends */
static void trace_steps_robust(void) {
  static const char step[] =
      "{\"ph\":\"X\",\"pid\":0,\"tid\":48,\"cat\":\"step\",\"name\":\"step\",\"ts\":%d,\"dur\":%d},"
      "{\"ph\":\"X\",\"pid\":0,\"tid\":0,\"cat\":\"forward\",\"name\":\"matmul\",\"ts\":%d,\"dur\":300},"
      "{\"ph\":\"X\",\"pid\":0,\"tid\":0,\"cat\":\"backward\",\"name\":\"matmul\",\"ts\":%d,\"dur\":500},"
      "{\"ph\":\"X\",\"pid\":0,\"tid\":16,\"cat\":\"collective\",\"name\":\"all_reduce\",\"ts\":%d,\"dur\":%d},";
  char text[4096], path[] = "/tmp/sbpc-test-trace-XXXXXX";
  int n = snprintf(text, sizeof text, "{\"traceEvents\":[");
  static const int len[4] = {900, 1000, 10000, 1100}, comm[4] = {100, 100, 9000, 400};
  for (int i = 0, t = 0; i < 4; t += len[i], i++) /* the middle half by length: steps 1 and 3 */
    n += snprintf(text + n, sizeof text - (size_t)n, step, t, len[i], t, t + 300, t + 800, comm[i]);
  n--; /* the last comma */
  n += snprintf(text + n, sizeof text - (size_t)n, "],\"otherData\":{\"measured_step_s\":0.003,\"traced_steps\":4}}");
  int fd = mkstemp(path);
  CU_ASSERT_FATAL(fd >= 0);
  CU_ASSERT_FATAL(write(fd, text, (size_t)n) == (ssize_t)n);
  close(fd);
  tn_step m;
  memset(&m, 0, sizeof m);
  CU_ASSERT_FATAL(tn_measured_trace(path, &m));
  CU_ASSERT_DOUBLE_EQUAL(m.phase[TN_FWD], 0.3e-3, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(m.phase[TN_BWD], 0.5e-3, 1e-12);
  CU_ASSERT_DOUBLE_EQUAL(m.phase[TN_COMM], 0.2e-3, 1e-12);    /* 100 us, and step 3's 400 cut at 300 */
  CU_ASSERT_DOUBLE_EQUAL(m.phase[TN_BUBBLE], 0.05e-3, 1e-12); /* 100 and 0 */
  CU_ASSERT_DOUBLE_EQUAL(m.colls, 1, 0);
  unlink(path);
}

/* the fastest round: its index (the first of equals) */
static void best_of_rounds(void) {
  double three[3] = {3, 1, 2}, tie[4] = {4, 1, 3, 1}, one[1] = {7};
  CU_ASSERT_EQUAL(tn_best_round(three, 3), 1);
  CU_ASSERT_EQUAL(tn_best_round(tie, 4), 1);
  CU_ASSERT_EQUAL(tn_best_round(one, 1), 0);
}

static void calibration_path(void) {
  const char *old = getenv("SBPC_CALIBRATION");
  char *keep = old ? strdup(old) : NULL;
  setenv("SBPC_CALIBRATION", "env.json", 1);
  CU_ASSERT_STRING_EQUAL(plan_calib_path(NULL), "env.json");
  CU_ASSERT_STRING_EQUAL(plan_calib_path("flag.json"), "flag.json");
  setenv("SBPC_CALIBRATION", "", 1);
  CU_ASSERT_PTR_NULL(plan_calib_path(NULL));
  if (keep) setenv("SBPC_CALIBRATION", keep, 1);
  else unsetenv("SBPC_CALIBRATION");
  free(keep);
}

void cu_register(void) {
  CU_pSuite s = CU_add_suite("tn_calib", NULL, NULL);
  CU_ADD(s, tune_roundtrip);
  CU_ADD(s, refusals);
  CU_ADD(s, absolute_and_relative);
  CU_ADD(s, executor_section);
  CU_ADD(s, executor_two_references);
  CU_ADD(s, best_of_rounds);
  CU_ADD(s, executor_coll_latency);
  CU_ADD(s, executor_reference_record);
  CU_ADD(s, trace_attention);
  CU_ADD(s, trace_steps_robust);
  CU_ADD(s, calibration_path);
}
