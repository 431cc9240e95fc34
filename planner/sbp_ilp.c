/* sbp_ilp.c — the per-block SBP program (Alpa-style), solved with GLPK.
 *
 * Nodes are the ops of one layer plus the tensors that enter it from outside
 * (parameters, inputs, the layer's input); each node picks one choice (a
 * signature, or a layout for a tensor node) at a node cost. Edges carry the
 * boxing cost between the producer's choice and the consumer's. The integer
 * program is the usual linearisation: binary x[v][c] with sum_c x[v][c] = 1,
 * and per edge continuous y[e][cu][cv] >= 0 with sum_cv y = x[u][cu] and
 * sum_cu y = x[v][cv], so y is the product of the two choices at the optimum;
 * minimise sum x*node cost + sum y*edge cost. A pair whose edge cost is
 * PLAN_FORBID or more gets y fixed at 0 (never a huge objective coefficient,
 * which would drown the real costs in the LP's tolerances). glp_intopt runs with presolve,
 * messages off and a time limit. If GLPK fails or finds no integer solution,
 * a greedy choice improved by coordinate descent is returned and the caller
 * is told (it says so in the plan). */
#include "planner/plan_int.h"
#include <glpk.h>
#include <stdlib.h>

double plan_sbp_eval(const plan_sbp_prob *p, const int *ch) {
  double s = 0;
  for (int v = 0; v < p->nnode; v++) s += p->ncost[v][ch[v]];
  for (int e = 0; e < p->nedge; e++)
    s += p->ecost[e][ch[p->eu[e]] * p->nch[p->ev[e]] + ch[p->ev[e]]];
  return s;
}

/* greedy: best node costs, then coordinate descent until no change */
static void greedy(const plan_sbp_prob *p, int *ch) {
  for (int v = 0; v < p->nnode; v++) {
    ch[v] = 0;
    for (int c = 1; c < p->nch[v]; c++)
      if (p->ncost[v][c] < p->ncost[v][ch[v]]) ch[v] = c;
  }
  for (int round = 0; round < 20; round++) {
    bool changed = false;
    for (int v = 0; v < p->nnode; v++) {
      int orig = ch[v], best = orig;
      double bo = plan_sbp_eval(p, ch);
      for (int c = 0; c < p->nch[v]; c++) {
        ch[v] = c;
        double o = plan_sbp_eval(p, ch);
        if (o < bo - 1e-15) bo = o, best = c;
      }
      ch[v] = best;
      if (best != orig) changed = true;
    }
    if (!changed) break;
  }
}

typedef struct {
  int *ia, *ja;
  double *ar;
  int n, cap;
} triples;

static void put(triples *t, int i, int j, double v) {
  if (t->n + 1 >= t->cap) {
    t->cap = t->cap ? 2 * t->cap : 1024;
    t->ia = xrealloc(t->ia, sizeof(int) * (size_t)t->cap);
    t->ja = xrealloc(t->ja, sizeof(int) * (size_t)t->cap);
    t->ar = xrealloc(t->ar, sizeof(double) * (size_t)t->cap);
  }
  t->n++;
  t->ia[t->n] = i, t->ja[t->n] = j, t->ar[t->n] = v;
}

/* build: columns x then y; returns the glp_prob, xcol[v] = first x column */
static glp_prob *build(const plan_sbp_prob *p, int *xcol, triples *t) {
  glp_prob *lp = glp_create_prob();
  glp_set_obj_dir(lp, GLP_MIN);
  int ncol = 0, nrow = 0;
  for (int v = 0; v < p->nnode; v++) xcol[v] = ncol + 1, ncol += p->nch[v];
  int ny = 0;
  for (int e = 0; e < p->nedge; e++) ny += p->nch[p->eu[e]] * p->nch[p->ev[e]];
  glp_add_cols(lp, ncol + ny);
  for (int v = 0; v < p->nnode; v++)
    for (int c = 0; c < p->nch[v]; c++) {
      glp_set_col_kind(lp, xcol[v] + c, GLP_BV);
      glp_set_obj_coef(lp, xcol[v] + c, p->ncost[v][c]);
    }
  nrow = p->nnode;
  for (int e = 0; e < p->nedge; e++) nrow += p->nch[p->eu[e]] + p->nch[p->ev[e]];
  glp_add_rows(lp, nrow);
  int row = 0;
  for (int v = 0; v < p->nnode; v++) {
    glp_set_row_bnds(lp, ++row, GLP_FX, 1, 1);
    for (int c = 0; c < p->nch[v]; c++) put(t, row, xcol[v] + c, 1);
  }
  int col = ncol;
  for (int e = 0; e < p->nedge; e++) {
    int u = p->eu[e], v = p->ev[e], nu = p->nch[u], nv = p->nch[v];
    int r0 = row;
    for (int i = 0; i < nu + nv; i++) glp_set_row_bnds(lp, ++row, GLP_FX, 0, 0);
    for (int i = 0; i < nu; i++) put(t, r0 + 1 + i, xcol[u] + i, -1);
    for (int j = 0; j < nv; j++) put(t, r0 + 1 + nu + j, xcol[v] + j, -1);
    for (int i = 0; i < nu; i++)
      for (int j = 0; j < nv; j++) {
        ++col;
        double ec = p->ecost[e][i * nv + j];
        glp_set_col_bnds(lp, col, ec >= PLAN_FORBID ? GLP_FX : GLP_LO, 0, 0); /* a forbidden pair */
        glp_set_obj_coef(lp, col, ec >= PLAN_FORBID ? 0 : ec);
        put(t, r0 + 1 + i, col, 1);
        put(t, r0 + 1 + nu + j, col, 1);
      }
  }
  glp_load_matrix(lp, t->n, t->ia, t->ja, t->ar);
  return lp;
}

bool plan_sbp_solve(const plan_sbp_prob *p, int *ch, double *obj, double tlim) {
  bool trivial = true;
  for (int v = 0; v < p->nnode; v++) trivial &= p->nch[v] == 1;
  if (trivial) { /* one choice each (a 1-device axis): nothing to solve */
    for (int v = 0; v < p->nnode; v++) ch[v] = 0;
    *obj = plan_sbp_eval(p, ch);
    return true;
  }
  int *xcol = xmalloc(sizeof(int) * (size_t)p->nnode);
  triples t = {0};
  glp_term_out(GLP_OFF);
  glp_prob *lp = build(p, xcol, &t);
  glp_iocp parm;
  glp_init_iocp(&parm);
  parm.msg_lev = GLP_MSG_OFF;
  parm.presolve = GLP_ON;
  parm.tm_lim = (int)(tlim * 1000);
  int rc = glp_intopt(lp, &parm);
  int st = rc == 0 ? glp_mip_status(lp) : GLP_UNDEF;
  bool ok = st == GLP_OPT || st == GLP_FEAS;
  if (ok) {
    for (int v = 0; v < p->nnode; v++) {
      ch[v] = 0;
      for (int c = 0; c < p->nch[v]; c++)
        if (glp_mip_col_val(lp, xcol[v] + c) > 0.5) ch[v] = c;
    }
  } else {
    greedy(p, ch);
  }
  glp_delete_prob(lp);
  free(t.ia), free(t.ja), free(t.ar), free(xcol);
  *obj = plan_sbp_eval(p, ch);
  return st == GLP_OPT;
}
