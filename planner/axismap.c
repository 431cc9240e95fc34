/* axismap.c — the order of the mesh axes over the cluster hierarchy, in GLPK.
 *
 * Global ranks are numbered node by node, so the innermost mesh axis is a
 * group of consecutive ranks (inside one node when it is small enough) and an
 * outer axis has a stride equal to the product of the axes inside it. The
 * cost of an axis therefore depends on which axes lie inside it: cost[a][S]
 * for every set S of other axes (search.c fills it with the axis's
 * communication time per step on the links such a group crosses). The
 * program: binary z[a][b] "a inside b" with z[a][b] + z[b][a] = 1 and
 * transitivity z[a][b] + z[b][c] - z[a][c] <= 1; binary w[a][S] selecting the
 * inside set, sum_S w[a][S] = 1 and sum_{S containing b} w[a][S] = z[b][a];
 * minimise sum cost[a][S] w[a][S]. So TP lands inside a node and the slow NICs
 * go to the axis that talks least. */
#include "planner/plan_int.h"
#include <glpk.h>
#include <stdlib.h>

double plan_axis_eval(const plan_axis_prob *p, const int *order) {
  double s = 0;
  for (int i = 0; i < p->n; i++) {
    int mask = 0;
    for (int j = i + 1; j < p->n; j++) mask |= 1 << order[j];
    s += p->cost[order[i]][mask];
  }
  return s;
}

static int zcol(int n, int a, int b) { return 1 + a * n + b; }

bool plan_axis_solve(const plan_axis_prob *p, int *order, double tlim) {
  int n = p->n, full = (1 << n) - 1;
  for (int i = 0; i < n; i++) order[i] = i;
  glp_term_out(GLP_OFF);
  glp_prob *lp = glp_create_prob();
  glp_set_obj_dir(lp, GLP_MIN);
  int nz = n * n, nw = n * (1 << n);
  glp_add_cols(lp, nz + nw);
  for (int c = 1; c <= nz + nw; c++) glp_set_col_kind(lp, c, GLP_BV);
  for (int a = 0; a < n; a++) glp_set_col_bnds(lp, zcol(n, a, a), GLP_FX, 0, 0);
  for (int a = 0; a < n; a++)
    for (int S = 0; S <= full; S++) {
      int c = 1 + nz + a * (1 << n) + S;
      if (S & (1 << a)) glp_set_col_bnds(lp, c, GLP_FX, 0, 0);
      else glp_set_obj_coef(lp, c, p->cost[a][S]);
    }
  int cap = 4096, k = 0, row = 0;
  int *ia = xmalloc(sizeof(int) * (size_t)cap), *ja = xmalloc(sizeof(int) * (size_t)cap);
  double *ar = xmalloc(sizeof(double) * (size_t)cap);
#define PUT(r, c, v) (++k, ia[k] = (r), ja[k] = (c), ar[k] = (v))
  for (int a = 0; a < n; a++)
    for (int b = a + 1; b < n; b++) {
      glp_add_rows(lp, 1), ++row;
      glp_set_row_bnds(lp, row, GLP_FX, 1, 1);
      PUT(row, zcol(n, a, b), 1), PUT(row, zcol(n, b, a), 1);
    }
  for (int a = 0; a < n; a++)
    for (int b = 0; b < n; b++)
      for (int c = 0; c < n; c++) {
        if (a == b || b == c || a == c) continue;
        glp_add_rows(lp, 1), ++row;
        glp_set_row_bnds(lp, row, GLP_UP, 0, 1);
        PUT(row, zcol(n, a, b), 1), PUT(row, zcol(n, b, c), 1), PUT(row, zcol(n, a, c), -1);
      }
  for (int a = 0; a < n; a++) {
    glp_add_rows(lp, 1), ++row;
    glp_set_row_bnds(lp, row, GLP_FX, 1, 1);
    for (int S = 0; S <= full; S++) PUT(row, 1 + nz + a * (1 << n) + S, 1);
    for (int b = 0; b < n; b++) {
      if (b == a) continue;
      glp_add_rows(lp, 1), ++row;
      glp_set_row_bnds(lp, row, GLP_FX, 0, 0);
      for (int S = 0; S <= full; S++)
        if (S & (1 << b)) PUT(row, 1 + nz + a * (1 << n) + S, 1);
      PUT(row, zcol(n, b, a), -1);
    }
  }
#undef PUT
  glp_load_matrix(lp, k, ia, ja, ar);
  glp_iocp parm;
  glp_init_iocp(&parm);
  parm.msg_lev = GLP_MSG_OFF;
  parm.presolve = GLP_ON;
  parm.tm_lim = (int)(tlim * 1000);
  int rc = glp_intopt(lp, &parm), st = rc == 0 ? glp_mip_status(lp) : GLP_UNDEF;
  bool ok = st == GLP_OPT;
  if (ok) { /* outermost = the axis with the most axes inside */
    int inside[4] = {0};
    for (int a = 0; a < n; a++)
      for (int b = 0; b < n; b++)
        if (a != b && glp_mip_col_val(lp, zcol(n, b, a)) > 0.5) inside[a]++;
    for (int a = 0; a < n; a++) order[n - 1 - inside[a]] = a;
  }
  glp_delete_prob(lp);
  free(ia), free(ja), free(ar);
  return ok;
}
