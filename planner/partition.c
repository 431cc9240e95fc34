/* partition.c — layers per pipeline stage, an integer program in GLPK.
 *
 * Stage s runs x_s layers at t_s seconds per layer per micro-batch plus a
 * fixed e_s (the embedding on the first stage, the head on the last), so its
 * micro-batch time is T_s = x_s t_s + e_s. With m micro-batches and v virtual
 * stages a step takes m T + (sum_s T_s - T) / v, T = max_s T_s (for equal
 * stages and v = 1 this is the familiar (m + p - 1) T). The program: integer
 * y_s >= 1 with x_s = v y_s (every stage holds at least one layer: an empty
 * stage would only add devices that do nothing), continuous T >= T_s, sum_s x_s = L, and memory
 * x_s mem_l_s + mem_f_s <= cap_s (as column bounds); minimise
 * (m - 1/v) T + (1/v) sum_s T_s. On a mixed cluster faster stages get more
 * layers; a memory-tight stage gets fewer. */
#include "planner/plan_int.h"
#include <glpk.h>
#include <math.h>
#include <stdlib.h>

double plan_part_objective(const plan_part_prob *p, const int *x) {
  double T = 0, sum = 0;
  for (int s = 0; s < p->p; s++) {
    double ts = x[s] * p->t[s] + p->e[s];
    sum += ts;
    if (ts > T) T = ts;
  }
  return p->m * T + (sum - T) / p->v;
}

void plan_part_even(const plan_part_prob *p, int *x) {
  int chunks = p->L / p->v, base = chunks / p->p, rem = chunks % p->p;
  for (int s = 0; s < p->p; s++) x[s] = p->v * (base + (s < rem ? 1 : 0));
  x[p->p - 1] += p->L - p->v * chunks; /* only when L % v != 0 */
}

/* ymax: the most chunks stage s can hold in memory; -1 if not even one */
static double ymax(const plan_part_prob *p, int s) {
  double room = p->cap[s] - p->mem_f[s];
  if (room < 0) return -1;
  if (p->mem_l[s] <= 0) return p->L / p->v;
  return floor(room / (p->v * p->mem_l[s]));
}

int plan_part_solve(const plan_part_prob *p, int *x, double tlim) {
  plan_part_even(p, x);
  if (p->L % p->v || p->L / p->v < p->p) return 0;
  int P = p->p;
  for (int s = 0; s < P; s++)
    if (ymax(p, s) < 1) return 0;
  glp_term_out(GLP_OFF);
  glp_prob *lp = glp_create_prob();
  glp_set_obj_dir(lp, GLP_MIN);
  glp_add_cols(lp, P + 1); /* y_1..y_P, T */
  for (int s = 0; s < P; s++) {
    double ub = ymax(p, s);
    if (ub > p->L / p->v) ub = p->L / p->v;
    glp_set_col_kind(lp, s + 1, GLP_IV);
    glp_set_col_bnds(lp, s + 1, ub > 1 ? GLP_DB : GLP_FX, 1, ub > 1 ? ub : 1);
    glp_set_obj_coef(lp, s + 1, p->t[s]); /* (1/v) * v * t_s */
  }
  glp_set_col_bnds(lp, P + 1, GLP_LO, 0, 0);
  glp_set_obj_coef(lp, P + 1, p->m - 1.0 / p->v);
  glp_add_rows(lp, P + 1);
  int n = 0, cap = 3 * P + 2;
  int *ia = xmalloc(sizeof(int) * (size_t)(cap + 1)), *ja = xmalloc(sizeof(int) * (size_t)(cap + 1));
  double *ar = xmalloc(sizeof(double) * (size_t)(cap + 1));
  for (int s = 0; s < P; s++) { /* v t_s y_s - T <= -e_s */
    glp_set_row_bnds(lp, s + 1, GLP_UP, 0, -p->e[s]);
    ++n, ia[n] = s + 1, ja[n] = s + 1, ar[n] = p->v * p->t[s];
    ++n, ia[n] = s + 1, ja[n] = P + 1, ar[n] = -1;
  }
  glp_set_row_bnds(lp, P + 1, GLP_FX, p->L / p->v, p->L / p->v);
  for (int s = 0; s < P; s++) ++n, ia[n] = P + 1, ja[n] = s + 1, ar[n] = 1;
  glp_load_matrix(lp, n, ia, ja, ar);
  glp_iocp parm;
  glp_init_iocp(&parm);
  parm.msg_lev = GLP_MSG_OFF;
  parm.presolve = GLP_ON;
  parm.tm_lim = (int)(tlim * 1000);
  int rc = glp_intopt(lp, &parm), st = rc == 0 ? glp_mip_status(lp) : GLP_UNDEF;
  int ret;
  if (st == GLP_OPT || st == GLP_FEAS) {
    for (int s = 0; s < P; s++) x[s] = p->v * (int)lround(glp_mip_col_val(lp, s + 1));
    ret = st == GLP_OPT ? 1 : -1;
  } else {
    ret = (rc == 0 && (st == GLP_NOFEAS)) || rc == GLP_ENOPFS ? 0 : -1;
  }
  glp_delete_prob(lp);
  free(ia), free(ja), free(ar);
  return ret;
}
