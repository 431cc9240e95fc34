/* test_ex_plan.c — the plan reader (format/sbpc_plan.h): the fixture plans
 * read back with the right fields; malformed or inconsistent plans are
 * refused with the expected one-line reason, never a crash. */
#include "cu.h"
#include "export/export.h"
#include <stdlib.h>
#include <string.h>

static void fixtures(void) {
  char err[256];
  sbpc_plan *p = sbpc_plan_read(cu_src("tests/export/gpt3-175b-dgx-a100-128.json"), err, sizeof err);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT_EQUAL(p->devices, 1024);
  CU_ASSERT_EQUAL(p->dp * p->tp * p->pp * p->sp, 1024);
  CU_ASSERT_EQUAL(p->nstages, 8);
  CU_ASSERT_EQUAL(p->stages[7].last_layer, 95);
  CU_ASSERT_EQUAL(p->stages[3].ndevices, 128);
  CU_ASSERT_STRING_EQUAL(p->recompute, "selective");
  CU_ASSERT_EQUAL(sbpc_plan_stage_of_layer(p, 50), 0); /* chunk 1 of stage 0: 48..53 */
  CU_ASSERT_EQUAL(sbpc_plan_stage_of_layer(p, 13), 2);
  CU_ASSERT(ex_megatron_sp(p));
  CU_ASSERT(!ex_uneven_stages(p));
  CU_ASSERT_EQUAL(ex_global_batch(p), 1536);
  CU_ASSERT_STRING_EQUAL(p->ops[1].in_sbp[1], "S(1)");
  CU_ASSERT_STRING_EQUAL(p->ops[1].in_names[1], "h.attn.c_attn.weight");
  CU_ASSERT_EQUAL(p->stages[1].nchunks, 2);
  CU_ASSERT_EQUAL(p->stages[1].chunks[1][0], 54);
  CU_ASSERT_EQUAL(p->stages[1].nlayers, 12);
  CU_ASSERT_EQUAL(p->boxing[0].pass, 0);
  CU_ASSERT_EQUAL(p->devices_per_node, 8);
  CU_ASSERT_STRING_EQUAL(p->precision, "bf16");
  sbpc_plan_free(p);
  p = sbpc_plan_read(cu_src("tests/export/gpt2xl-mixed-a100-v100.json"), err, sizeof err);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT(ex_uneven_stages(p));
  CU_ASSERT(ex_mixed_devices(p));
  CU_ASSERT_PTR_NOT_NULL(ex_uneven_tp(p));
  CU_ASSERT(p->adaptive_sp);
  CU_ASSERT_EQUAL(p->ndevice_types, 2);
  CU_ASSERT_STRING_EQUAL(p->precision, "fp16");
  sbpc_plan_free(p);
}

#define BASE "\"format\":\"sbpc-plan\",\"version\":1,\"model\":{\"layers\":4},\"cluster\":{\"devices\":4},"
#define PAR "\"parallel\":{\"dp\":1,\"tp\":2,\"pp\":2,\"micro_batch\":1,\"num_micro_batches\":4}"
#define ST2 ",\"stages\":[{\"devices\":[0,1],\"layers\":[0,1]},{\"devices\":[2,3],\"layers\":[2,3]}]"

static void expect_error(const char *text, const char *want) {
  char err[256];
  sbpc_plan *p = sbpc_plan_parse(text, strlen(text), "t", err, sizeof err);
  CU_ASSERT_PTR_NULL(p);
  if (p) sbpc_plan_free(p);
  if (!strstr(err, want)) fprintf(stderr, "\n  got '%s', want '%s'\n", err, want);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
}

static void refusals(void) {
  expect_error("", "1:1: invalid JSON");
  expect_error("{\"format\":\"sbpc-plan\",\n\"version\":}", "2:11: invalid JSON");
  expect_error("[]", "must be a JSON object");
  expect_error("{\"format\":\"other\"}", "not an sbpc plan");
  expect_error("{\"format\":\"sbpc-plan\",\"version\":9}", "newer than");
  expect_error("{" BASE "\"parallel\":{\"dp\":1,\"tp\":2,\"pp\":2,\"micro_batch\":1}}", "num_micro_batches");
  expect_error("{" BASE "\"parallel\":{\"dp\":2,\"tp\":2,\"pp\":2,\"micro_batch\":1,\"num_micro_batches\":4}}",
               "dp*tp*pp*sp");
  expect_error("{" BASE "\"parallel\":{\"dp\":1.5,\"tp\":2,\"pp\":2,\"micro_batch\":1,\"num_micro_batches\":4}}",
               "parallel.dp' must be an integer");
  expect_error("{" BASE PAR "}", "'stages' has 0 entries");
  expect_error("{" BASE PAR ",\"stages\":[{\"devices\":[0,1],\"layers\":[0,2]},{\"devices\":[2,3],\"layers\":[2,3]}]}",
               "stages must cover layers");
  expect_error("{" BASE "\"parallel\":{\"dp\":1,\"tp\":2,\"pp\":2,\"vpp\":2,\"micro_batch\":1,\"num_micro_batches\":4}"
               ST2 "}", "layers_chunks' is required");
  expect_error("{" BASE PAR ",\"stages\":[{\"devices\":[0,1],\"layers\":[0,1]},{\"devices\":[2,9],\"layers\":[2,3]}]}",
               "is not a device id");
  expect_error("{" BASE PAR ",\"stages\":[{\"devices\":[0,1],\"layers\":[0,1]},{\"devices\":[2,3],\"layers\":[2,2]}]}",
               "stages end at layer 2");
  expect_error("{" BASE "\"parallel\":{\"dp\":1,\"tp\":2,\"pp\":2,\"micro_batch\":1,\"num_micro_batches\":4,"
               "\"recompute\":\"most\"}" ST2 "}",
               "recompute' must be none");
  expect_error("{" BASE PAR ST2 ",\"ops\":[{\"name\":\"a\",\"sbp\":[1]}]}", "ops[0].sbp[0]' must be an SBP string");
  expect_error("{" BASE PAR ST2 ",\"boxing\":[{\"pass\":\"sideways\"}]}", "boxing[0].pass' must be forward");
  expect_error("{" BASE PAR ST2 ",\"mesh\":{\"axes\":[\"tp\"],\"shape\":[]}}", "mesh.shape");
  expect_error("{" BASE PAR ST2 ",\"predicted\":{\"step_time_s\":\"fast\"}}", "predicted.step_time_s' must be a number");
}

static void accepts_minimal(void) {
  char err[256];
  const char *text = "{" BASE PAR ST2 "}";
  sbpc_plan *p = sbpc_plan_parse(text, strlen(text), "t", err, sizeof err);
  CU_ASSERT_PTR_NOT_NULL_FATAL(p);
  CU_ASSERT_EQUAL(p->sp, 1);
  CU_ASSERT_EQUAL(p->vpp, 1);
  CU_ASSERT_STRING_EQUAL(p->recompute, "none");
  CU_ASSERT_EQUAL(p->predicted.step_time_s, -1);
  sbpc_plan_free(p);
}

void cu_register(void) {
  CU_pSuite s = CU_add_suite("ex_plan", NULL, NULL);
  CU_ADD(s, fixtures);
  CU_ADD(s, refusals);
  CU_ADD(s, accepts_minimal);
}
