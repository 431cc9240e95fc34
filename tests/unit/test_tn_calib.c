/* test_tn_calib.c — `sbpc tune --quick` writes a calibration that the one
 * calibration reader (plan_calib_parse / plan_calib_load, planner/calib_read.c)
 * accepts, with sane measured values; malformed calibrations are refused with
 * the offending field named and the planner's constants left untouched. */
#include "cu.h"
#include "tune/tune.h"
#include "planner/planner.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void tune_roundtrip(void) {
  char path[] = "/tmp/sbpc-calib-XXXXXX";
  int fd = mkstemp(path);
  CU_ASSERT_FATAL(fd >= 0);
  close(fd);
  tn_opts o = {1, 0, NULL, 0, 0, NULL, 0, NULL};
  CU_ASSERT_EQUAL_FATAL(tn_measure(&o, path), 0);
  size_t len;
  char *text = read_file(path, 1 << 20, &len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  char err[256];
  plan_calib pc;
  plan_calib_default(&pc);
  CU_ASSERT(plan_calib_parse(text, len, &pc, err, sizeof err));
  CU_ASSERT(pc.loaded);
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
      {"{\"format\":\"sbpc-calibration\",\"memory\":{\"bandwidth_eff\":7}}", "bandwidth_eff"},
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

void cu_register(void) {
  CU_pSuite s = CU_add_suite("tn_calib", NULL, NULL);
  CU_ADD(s, tune_roundtrip);
  CU_ADD(s, refusals);
}
