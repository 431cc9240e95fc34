/* ex_trace.c — Chrome/Perfetto trace JSON and an SVG timeline of one
 * predicted step.
 *
 * The slices come from ex_schedule (a simulation of the plan's 1F1B or
 * interleaved schedule). The trace is the Trace Event Format Perfetto and
 * chrome://tracing open: {"traceEvents": [...]} with "M" metadata events
 * naming a process per track and a thread per lane (compute, collectives,
 * pipeline p2p), and "X" complete events (ts/dur in microseconds) carrying
 * the micro-batch and chunk in args. A track is a device when the plan has
 * at most max_devices devices (every device of a stage shows that stage's
 * timeline), else a stage with its rank range: thousands of identical tracks
 * help nobody. The JSON is streamed with fprintf; strings from the plan are
 * escaped. The SVG draws one row per stage, coloured by slice category. */
#include "export/export.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void jstr(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
    else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
    else fputc(ch, f);
  }
  fputc('"', f);
}

static const char *const lane_names[3] = {"compute", "collectives", "pipeline p2p"};

static void track_meta(FILE *f, int pid, const char *name, int *first) {
  fprintf(f, "%s\n{\"ph\":\"M\",\"pid\":%d,\"name\":\"process_name\",\"args\":{\"name\":", *first ? "" : ",", pid);
  jstr(f, name);
  fprintf(f, "}},\n{\"ph\":\"M\",\"pid\":%d,\"name\":\"process_sort_index\",\"args\":{\"sort_index\":%d}}", pid, pid);
  for (int l = 0; l < 3; l++)
    fprintf(f, ",\n{\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"name\":\"thread_name\",\"args\":{\"name\":\"%s\"}}", pid, l,
            lane_names[l]);
  *first = 0;
}

static void slice(FILE *f, int pid, const ex_slice *e) {
  double ts = round(e->t0 * 1e9) / 1e3, end = round(e->t1 * 1e9) / 1e3; /* us, on a ns grid */
  fprintf(f, ",\n{\"ph\":\"X\",\"pid\":%d,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f,\"name\":", pid, e->lane, ts,
          end - ts);
  jstr(f, e->name);
  fputs(",\"cat\":", f);
  jstr(f, e->cat);
  if (e->mb >= 0) fprintf(f, ",\"args\":{\"microbatch\":%d,\"chunk\":%d}", e->mb, e->chunk);
  fputc('}', f);
}

/* stage_name: "stage s: ranks a-b (n devices, type)". */
static void stage_name(const sbpc_plan *p, int s, char *buf, size_t n) {
  const sbpc_plan_stage *st = &p->stages[s];
  int lo = st->devices[0], hi = st->devices[0];
  for (int i = 1; i < st->ndevices; i++) {
    if (st->devices[i] < lo) lo = st->devices[i];
    if (st->devices[i] > hi) hi = st->devices[i];
  }
  snprintf(buf, n, "stage %d: ranks %d-%d (%d devices%s%s), layers %d-%d", s, lo, hi, st->ndevices,
           st->device_type ? ", " : "", st->device_type ? st->device_type : "", st->first_layer, st->last_layer);
}

static void write_tracks(const sbpc_plan *p, int per_device, const ex_slice *sl, int n, FILE *f) {
  int first = 1;
  char name[256];
  for (int s = 0; s < p->nstages; s++) {
    const sbpc_plan_stage *st = &p->stages[s];
    int ntracks = per_device ? st->ndevices : 1;
    for (int d = 0; d < ntracks; d++) {
      int pid = per_device ? st->devices[d] : s;
      if (per_device)
        snprintf(name, sizeof name, "device %d (stage %d%s%s)", pid, s, st->device_type ? ", " : "",
                 st->device_type ? st->device_type : "");
      else
        stage_name(p, s, name, sizeof name);
      track_meta(f, pid, name, &first);
      for (int i = 0; i < n; i++)
        if (sl[i].stage == s) slice(f, pid, &sl[i]);
    }
  }
}

int ex_trace(const sbpc_plan *p, const ex_trace_opts *o, ex_ctx *c) {
  int n = 0;
  double step = 0;
  ex_slice *sl = ex_schedule(p, &n, &step, c);
  if (!sl) return 1;
  int maxd = o && o->max_devices > 0 ? o->max_devices : 64;
  int per_device = o && o->per_device >= 0 ? o->per_device : p->devices <= maxd;
  FILE *f = c->out;
  fputs("{\"displayTimeUnit\":\"ms\",\"otherData\":{\"plan\":", f);
  jstr(f, p->model_name);
  fprintf(f, ",\"schedule\":\"%s\",\"simulated_step_s\":%.6g,\"predicted_step_s\":%.6g,\"tracks\":\"%s\"},\n",
          p->vpp > 1 ? "interleaved-1f1b" : "1f1b", step, p->predicted.step_time_s,
          per_device ? "per device" : "per stage");
  fputs("\"traceEvents\":[", f);
  write_tracks(p, per_device, sl, n, f);
  fputs("\n]}\n", f);
  ex_note(c, "simulated step %.4g s (plan predicts %.4g s), %d slices per %s track", step,
          p->predicted.step_time_s, n / (p->nstages ? p->nstages : 1), per_device ? "device" : "stage");
  free(sl);
  return 0;
}

static const char *colour(const char *cat) {
  static const char *const map[][2] = {{"forward", "#4e79a7"},       {"backward", "#f28e2b"},
                                       {"recompute", "#b07aa1"},     {"bubble", "#e8e8e8"},
                                       {"optimizer", "#59a14f"},     {"dp-collective", "#e15759"},
                                       {"p2p", "#76b7b2"}};
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (!strcmp(cat, map[i][0])) return map[i][1];
  return "#edc948"; /* tensor-parallel collectives */
}

int ex_trace_svg(const sbpc_plan *p, ex_ctx *c) {
  int n = 0;
  double step = 0;
  ex_slice *sl = ex_schedule(p, &n, &step, c);
  if (!sl) return 1;
  const double W = 960, left = 90, row = 26, top = 30;
  double scale = step > 0 ? (W - left - 10) / step : 1;
  FILE *f = c->out;
  double h = top + row * p->nstages * 2 + 40;
  fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" "
             "font-size=\"11\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, h);
  fprintf(f, "<text x=\"8\" y=\"18\" font-size=\"13\">one predicted step of ");
  for (const char *s = p->model_name; *s; s++) fputc(*s == '<' || *s == '&' ? '_' : *s, f);
  fprintf(f, ": %.4g s, dp=%d tp=%d pp=%d vpp=%d, %d micro-batches</text>\n", step, p->dp, p->tp, p->pp, p->vpp,
          p->num_micro_batches);
  for (int s = 0; s < p->nstages; s++) {
    double y = top + row * 2 * s;
    fprintf(f, "<text x=\"8\" y=\"%.1f\">stage %d</text>\n", y + 14, s);
    fprintf(f, "<text x=\"8\" y=\"%.1f\" fill=\"#777\">comm</text>\n", y + row + 10);
  }
  for (int i = 0; i < n; i++) {
    const ex_slice *e = &sl[i];
    double y = top + row * 2 * e->stage + (e->lane ? row : 0), x = left + e->t0 * scale;
    double w = (e->t1 - e->t0) * scale, hh = e->lane ? row / 2 - 2 : row - 4;
    if (e->lane == 2) y += row / 2;
    fprintf(f, "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"%s\"/>\n", x, y, w > 0.3 ? w : 0.3,
            hh, colour(e->cat));
  }
  const char *legend[] = {"forward", "backward", "recompute", "bubble", "all-reduce", "p2p", "dp-collective",
                          "optimizer"};
  for (int k = 0; k < 8; k++)
    fprintf(f, "<rect x=\"%d\" y=\"%.0f\" width=\"12\" height=\"12\" fill=\"%s\"/><text x=\"%d\" y=\"%.0f\">%s</text>\n",
            90 + k * 105, h - 22, colour(legend[k]), 106 + k * 105, h - 12,
            strcmp(legend[k], "all-reduce") ? legend[k] : "TP collective");
  fputs("</svg>\n", f);
  free(sl);
  return 0;
}
