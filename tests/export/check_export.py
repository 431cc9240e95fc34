#!/usr/bin/env python3
"""check_export.py KIND OUT PLAN.json [LAUNCH]: check one `sbpc export` output
against the target's known flags/keys and their constraints (the tables in
this folder, written from the upstream sources named in each), and check that
the values the target would parse equal the plan. KIND: megatron, deepspeed
(OUT the JSON, LAUNCH the --launch script), torchtitan (v0.2.2 TOML),
torchtitan-main (the Python config function of `--target main`), dtensor. Exit 1 with
one line per problem. Standard library only; no network."""
import ast, json, math, os, re, shlex, sys, tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
errors = []


def err(msg):
    errors.append(msg)


def table(name):
    rows = {}
    for line in open(os.path.join(HERE, name)):
        if line.strip() and not line.startswith('#'):
            f = line.split()
            if f[0] == 'launcher':
                f = [f[0] + ' ' + f[1]] + f[2:]
            rows[f[0]] = f[1:]
    return rows


def value_ok(kind, v):
    """v (a string or a JSON/TOML value) fits the table's VALUE column."""
    try:
        if kind == '-':
            return v is None
        if kind.startswith('{'):
            return str(v) in kind[1:-1].split(',')
        if kind.startswith('int'):
            i = int(v) if not isinstance(v, bool) and float(v) == int(float(v)) else None
            return i is not None and (i > 0 if kind == 'int>0' else i >= int(kind[5:]) if kind.startswith('int>=') else True)
        if kind.startswith('float'):
            x = float(v)
            return x > 0 if kind == 'float>0' else x >= 0
        if kind == 'bool':
            return isinstance(v, bool)
        if kind == 'object':
            return isinstance(v, dict)
        if kind == 'str':
            return isinstance(v, str)
        if kind == 'list-of-lists':
            return isinstance(v, list) and all(isinstance(x, list) and all(isinstance(s, str) for s in x) for x in v)
        if kind == 'layout':
            return re.fullmatch(r'E[t|]*L', v) is not None
    except (TypeError, ValueError):
        return False
    return False


def requires_ok(req, flags, env):
    if req.startswith('env:'):
        var, op, want = re.match(r'env:(\w+)(!=|=)(.*)', req).groups()
        return (env.get(var) == want) == (op == '=')
    if req.startswith('!'):
        return req[1:] not in flags
    if req.startswith('%') or req.startswith('>='):
        return True  # checked with the value
    if '=' in req:
        f, v = req.split('=', 1)
        return flags.get(f) == v
    return any(r in flags for r in req.split('|'))


def check_flags(tab, flags, env, where):
    for f, v in flags.items():
        if f not in tab:
            err(f'{where}: unknown flag {f}')
            continue
        kind, reqs = tab[f][0], tab[f][1:]
        if not value_ok(kind, v):
            err(f'{where}: {f} {v!r} is not {kind}')
        for r in reqs:
            if r.startswith('%') and r[1:] in flags and value_ok('int>0', v) and int(v) % int(flags[r[1:]]):
                err(f'{where}: {f} {v} is not divisible by {r[1:]} {flags[r[1:]]}')
            elif r.startswith('>=') and r[2:] in flags and int(v) < int(flags[r[2:]]):
                err(f'{where}: {f} {v} < {r[2:]} {flags[r[2:]]}')
            elif not requires_ok(r, flags, env):
                err(f'{where}: {f} requires {r}')


def parse_flags(words):
    flags, i = {}, 0
    while i < len(words):
        w = words[i]
        if not w.startswith('--'):
            err(f'stray word {w!r}')
            i += 1
            continue
        val = words[i + 1] if i + 1 < len(words) and not words[i + 1].startswith('--') else None
        flags[w] = val
        i += 2 if val is not None else 1
    return flags


def script(path, launcher):
    """(env, launcher words, user-script flags) of an exported sh script."""
    text = open(path).read().replace('\\\n', ' ')
    env = {}
    for line in text.splitlines():
        m = re.match(r'export (\w+)=(\S+)', line)
        if m:
            env[m.group(1)] = m.group(2)
        m = re.match(r'unset (\w+)', line)
        if m:
            env.pop(m.group(1), None)
        if line.startswith(launcher + ' '):
            words = shlex.split(line.replace('"$@"', ''))
            i = words.index('pretrain_gpt.py')
            return env, words[1:i], parse_flags(words[i + 1:])
    err(f'{path}: no {launcher} line')
    return env, [], {}


def expect(where, got, want):
    for k in want:
        if want[k] is not None and got.get(k) != want[k]:
            err(f'{where}: {k} is {got.get(k)!r}, the plan says {want[k]!r}')


def plan_facts(plan):
    par, mod, tr = plan['parallel'], plan['model'], plan.get('train', {})
    return dict(tp=par['tp'], pp=par['pp'], dp=par['dp'], sp=par['sp'], micro=par['micro_batch'],
                gb=par['micro_batch'] * par['num_micro_batches'] * par['dp'], layers=mod['layers'],
                hidden=mod.get('hidden'), heads=mod.get('heads'), ffn=mod.get('ffn'),
                prec={'f32': 'fp32', 'f16': 'fp16'}.get(tr.get('precision'), tr.get('precision')), recompute=par['recompute'], zero=par['zero'],
                world=plan['cluster'].get('devices_used', plan['cluster']['devices']))


def megatron(out, plan):
    env, tr, flags = script(out, 'torchrun')
    check_flags(table('megatron_flags.txt'), flags, env, out)
    P = plan_facts(plan)
    world = int(tr[tr.index('--nnodes') + 1]) * int(tr[tr.index('--nproc-per-node') + 1])
    i = lambda f: int(flags[f]) if flags.get(f) is not None else None
    tp, pp, cp = i('--tensor-model-parallel-size'), i('--pipeline-model-parallel-size'), i('--context-parallel-size') or 1
    zero = (3 if flags.get('--data-parallel-sharding-strategy') == 'optim_grads_params' else 2) if '--use-megatron-fsdp' in flags \
        else int('--use-distributed-optimizer' in flags)
    got = dict(tp=tp, pp=pp, dp=world // (tp * pp * cp), sp=cp, micro=i('--micro-batch-size'), gb=i('--global-batch-size'),
               layers=i('--num-layers'), hidden=i('--hidden-size'), heads=i('--num-attention-heads'), ffn=i('--ffn-hidden-size'),
               prec='bf16' if '--bf16' in flags else 'fp16' if '--fp16' in flags else 'fp32',
               recompute=flags.get('--recompute-granularity', 'none'), zero=zero if P['dp'] > 1 else min(P['zero'], 1), world=world)
    want = dict(P, zero=P['zero'] if P['dp'] > 1 else min(P['zero'], 1))
    if (tp > 1 or cp > 1) and '--use-megatron-fsdp' not in flags and env.get('CUDA_DEVICE_MAX_CONNECTIONS') != '1':
        err(f'{out}: tensor/context parallelism without CUDA_DEVICE_MAX_CONNECTIONS=1')
    expect(out, got, want)


def deepspeed(out, plan, launch):
    cfg, tab = json.load(open(out)), table('deepspeed_keys.txt')

    def walk(o, pre):
        for k, v in o.items():
            if pre + k not in tab:
                err(f'{out}: unknown DeepSpeed key {pre + k}')
            elif not value_ok(tab[pre + k][0], v):
                err(f'{out}: {pre + k} = {v!r} is not {tab[pre + k][0]}')
            if isinstance(v, dict):
                walk(v, pre + k + '.')
    walk(cfg, '')
    P = plan_facts(plan)
    stage = cfg.get('zero_optimization', {}).get('stage', 0)
    got = dict(micro=cfg['train_micro_batch_size_per_gpu'], gb=cfg['train_batch_size'], zero=stage,
               prec='bf16' if cfg.get('bf16', {}).get('enabled') else 'fp16' if cfg.get('fp16', {}).get('enabled') else 'fp32')
    if cfg['train_batch_size'] != cfg['train_micro_batch_size_per_gpu'] * cfg['gradient_accumulation_steps'] * P['dp']:
        err(f'{out}: train_batch_size != micro * accumulation * dp')
    expect(out, got, dict(micro=P['micro'], gb=P['gb'], prec=P['prec'], zero=P['zero'] if P['pp'] == 1 else min(P['zero'], 1)))
    if not launch:
        return
    env, lw, flags = script(launch, 'deepspeed')
    lflags = {'launcher ' + k: v for k, v in parse_flags(lw).items()}
    tab = table('deepspeed_flags.txt')
    check_flags(tab, lflags, env, launch)
    check_flags(tab, flags, env, launch)
    if flags.get('--zero-stage') != str(stage):
        err(f'{launch}: --zero-stage differs from the JSON stage {stage}')
    if (stage >= 2) != ('--no-pipeline-parallel' in flags):
        err(f'{launch}: ZeRO-{stage} needs --no-pipeline-parallel exactly when >= 2 (DeepSpeed pipeline engine)')
    if ('activation_checkpointing' in cfg) != ('--deepspeed-activation-checkpointing' in flags):
        err(f'{launch}: activation_checkpointing without --deepspeed-activation-checkpointing (or the reverse)')
    for f, k in (('--bf16', 'bf16'), ('--fp16', 'fp16')):
        if (f in flags) != bool(cfg.get(k, {}).get('enabled')):
            err(f'{launch}: {f} disagrees with the JSON')
    i = lambda f: int(flags[f]) if flags.get(f) is not None else None
    expect(launch, dict(tp=i('--tensor-model-parallel-size'), pp=i('--pipeline-model-parallel-size'), micro=i('--micro-batch-size'),
                        gb=i('--global-batch-size'), layers=i('--num-layers'), hidden=i('--hidden-size'),
                        heads=i('--num-attention-heads'), ffn=i('--ffn-hidden-size')),
           {k: P[k] for k in ('tp', 'pp', 'micro', 'gb', 'layers', 'hidden', 'heads', 'ffn')})


def torchtitan(out, plan):
    cfg, tab = tomllib.load(open(out, 'rb')), table('torchtitan_keys.txt')
    for sec, kv in cfg.items():
        for k, v in kv.items():
            key = f'{sec}.{k}'
            if key not in tab:
                err(f'{out}: unknown torchtitan key {key}')
            elif not value_ok(tab[key][0], v):
                err(f'{out}: {key} = {v!r} is not {tab[key][0]}')
    P, par, tr = plan_facts(plan), cfg['parallelism'], cfg['training']
    dp = par['data_parallel_replicate_degree'] * par['data_parallel_shard_degree']
    pp = par['pipeline_parallel_degree']
    nmb = tr['global_batch_size'] // (tr['local_batch_size'] * dp)
    micro = par.get('pipeline_parallel_microbatch_size', 1) if pp > 1 else tr['local_batch_size']
    if pp > 1:
        nmb *= tr['local_batch_size'] // micro
        parts = par.get('module_fqns_per_model_part', [])
        layers = sorted(int(n.split('.')[1]) for p in parts for n in p if n.startswith('layers.'))
        if layers != list(range(P['layers'])) or len(parts) % pp:
            err(f'{out}: module_fqns_per_model_part does not cover the layers once in a multiple of pp parts')
    if dp * par['tensor_parallel_degree'] * pp * par['context_parallel_degree'] != P['world']:
        err(f'{out}: the degrees do not multiply to the world size {P["world"]} (ParallelDims)')
    expect(out, dict(tp=par['tensor_parallel_degree'], pp=pp, dp=dp, sp=par['context_parallel_degree'], micro=micro,
                     gb=tr['global_batch_size'], recompute=cfg['activation_checkpoint']['mode']),
           {k: P[k] for k in ('tp', 'pp', 'dp', 'sp', 'micro', 'gb', 'recompute')})
    if nmb != plan['parallel']['num_micro_batches']:
        err(f'{out}: torchtitan runs {nmb} micro-batches per step, the plan {plan["parallel"]["num_micro_batches"]}')



def titan_main_table():
    """torchtitan_main_keys.txt: the (module, name) imports and CALLEE.KEYWORD types."""
    imports, keys = set(), {}
    for line in open(os.path.join(HERE, 'torchtitan_main_keys.txt')):
        f = line.split()
        if not f or line.startswith('#'):
            continue
        if f[0] == 'import':
            imports.add((f[1], f[2]))
        else:
            keys[f[0]] = f[1]
    return imports, keys


def dotted(n):
    """a.b.c for a Name/Attribute chain, else None."""
    if isinstance(n, ast.Name):
        return n.id
    if isinstance(n, ast.Attribute):
        base = dotted(n.value)
        return base and base + '.' + n.attr
    return None


def titan_main(out, plan):
    """The config function: only the table's imports, calls and keywords, each
    value of its type; then torchtitan's start-up constraints and the plan."""
    imports, keys = titan_main_table()
    tree = ast.parse(open(out).read())
    consts = {}
    for n in tree.body:
        if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name):
            try:
                consts[n.targets[0].id] = ast.literal_eval(n.value)
            except ValueError:
                pass
    known = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom):
            for a in n.names:
                if (n.module, a.name) not in imports or a.asname:
                    err(f'{out}: imports {a.name} from {n.module}, not in torchtitan_main_keys.txt')
                elif n.module.startswith('torchtitan'):
                    known.add(a.name)
        elif isinstance(n, ast.Import):
            for a in n.names:
                if (a.name, '*') not in imports:
                    err(f'{out}: imports {a.name}')
        elif isinstance(n, ast.Name) and n.id in ('eval', 'exec', 'os', 'subprocess', '__import__', 'open', 'system'):
            err(f'{out}: uses {n.id}')

    def value(node):
        if isinstance(node, ast.Name) and node.id in consts:
            return consts[node.id]
        return ast.literal_eval(node)

    def typed(where, kind, node):
        if kind == 'code':
            return
        try:
            v = value(node)
        except ValueError:
            return err(f'{out}: {where} is not a literal or a constant')
        if not value_ok(kind, v):
            err(f'{out}: {where} = {v!r} is not {kind}')

    calls = {}
    for n in ast.walk(tree):
        if isinstance(n, ast.Subscript) and dotted(n.value) in known:
            typed(f'{dotted(n.value)}[...]', keys.get(dotted(n.value) + '.[]', 'unknown'), n.slice)
        if not isinstance(n, ast.Call) or not dotted(n.func) or dotted(n.func).split('.')[0] not in known:
            continue
        f = dotted(n.func)
        if not any(k.startswith(f + '.') for k in keys):
            err(f'{out}: calls {f}, not in torchtitan_main_keys.txt')
            continue
        for i, a in enumerate(n.args):
            k = f'{f}.#{i}'
            typed(k, keys[k], a) if k in keys else err(f'{out}: {f} takes no positional argument {i}')
        for kw in n.keywords:
            k = f'{f}.{kw.arg}'
            typed(k, keys[k], kw.value) if k in keys else err(f'{out}: unknown torchtitan keyword {k}')
        calls.setdefault(f, []).append({kw.arg: kw.value for kw in n.keywords})
    fns = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    if 'sbpc_config' not in fns or fns['sbpc_config'].args.args:
        err(f'{out}: no sbpc_config() for --config sbpc_config')
    one = lambda f: calls.get(f, [{}])[0]
    lit = lambda d, k, dflt=None: value(d[k]) if k in d else dflt
    par, tr, ac = one('ParallelismConfig'), one('TrainingConfig'), one('Trainer.Config').get('activation_checkpoint')
    if not par or not tr:
        return err(f'{out}: no ParallelismConfig(...) and TrainingConfig(...)')
    P = plan_facts(plan)
    rep, shard = lit(par, 'data_parallel_replicate_degree', 1), lit(par, 'data_parallel_shard_degree', -1)
    tp, pp, cp = lit(par, 'tensor_parallel_degree', 1), lit(par, 'pipeline_parallel_degree', 1), lit(par, 'context_parallel_degree', 1)
    dp = rep * shard
    if dp * tp * pp * cp != P['world']:
        err(f'{out}: the degrees do not multiply to the world size {P["world"]} (ParallelDims)')
    if pp > 1 and lit(tr, 'disable_cuda_graphs', False) is not True:
        err(f'{out}: pp > 1 without disable_cuda_graphs=True (Trainer.Config rejects it)')
    if consts.get('TIE_EMBEDDINGS') and pp > 1:
        err(f'{out}: tied embeddings with pp > 1 (Decoder.Config.update_from_config rejects it)')
    heads, kv = consts.get('N_HEADS', 0), consts.get('N_KV_HEADS', 0)
    if not heads or heads % tp or kv % tp:
        err(f'{out}: tp={tp} does not divide N_HEADS={heads} and N_KV_HEADS={kv}')
    tok, seq = lit(tr, 'num_tokens_per_microbatch_per_dp_rank', 16384), lit(tr, 'max_context_length', 2048)
    div = (tp if lit(par, 'enable_sequence_parallel', True) else 1) * (2 * cp if cp > 1 else 1)
    if tok % div:
        err(f'{out}: {tok} tokens per micro-batch do not divide by {div} (Trainer.__init__)')
    nmb = lit(par, 'num_pp_microbatches', 1) if pp > 1 else 1
    step = lit(tr, 'num_tokens_per_train_step', -1)
    step = step if step > 0 else tok * nmb * dp
    if step % (tok * nmb * dp):
        err(f'{out}: num_tokens_per_train_step {step} does not divide by {tok * nmb * dp} (Trainer.__init__)')
    if pp > 1:
        parts = lit(par, 'module_fqns_per_model_part', []) or []
        flat = [m for q in parts for m in q]
        want = ['tok_embeddings'] + [f'layers.{i}' for i in range(P['layers'])] + ['norm', 'lm_head']
        sched = lit(par, 'pipeline_parallel_schedule', '1F1B')
        per = len(parts) // pp if len(parts) % pp == 0 else 0
        if sorted(flat) != sorted(want) or flat[0] != 'tok_embeddings' or flat[-2:] != ['norm', 'lm_head']:
            err(f'{out}: module_fqns_per_model_part does not cover tok_embeddings, the layers, norm, lm_head once')
        if per != 1 if sched == '1F1B' else per < 2:
            err(f'{out}: {len(parts)} stage parts for {sched} over pp={pp}')
        if sched == 'Interleaved1F1B' and nmb % max(1, nmb // pp):
            err(f'{out}: Interleaved1F1B cannot run {nmb} micro-batches in max(1, {nmb}/{pp}) rounds')
    mb = nmb * (step // (tok * nmb * dp))
    recompute = {'SelectiveAC.Config': 'selective', 'FullAC.Config': 'full'}.get(
        dotted(ac.func) if isinstance(ac, ast.Call) else None, 'none' if isinstance(ac, ast.Constant) and ac.value is None else '?')
    expect(out, dict(tp=tp, pp=pp, dp=dp, sp=cp, micro=tok // seq, gb=step // seq, recompute=recompute,
                     layers=consts.get('N_LAYERS'), hidden=consts.get('DIM'), heads=heads),
           {k: P[k] for k in ('tp', 'pp', 'dp', 'sp', 'micro', 'gb', 'recompute', 'layers', 'hidden', 'heads')})
    if mb != plan['parallel']['num_micro_batches'] or (pp > 1 and nmb != mb):
        err(f'{out}: torchtitan runs {mb} micro-batches per step ({nmb} per pipeline flush), the plan '
            f'{plan["parallel"]["num_micro_batches"]} in one flush')
    m = plan['model']
    for key, const in (('vocab', 'VOCAB_SIZE'), ('kv_heads', 'N_KV_HEADS')):
        if m.get(key) and consts.get(const) != m[key]:
            err(f'{out}: {const} is {consts.get(const)}, the plan says {m[key]}')
    if seq != (plan.get('train', {}).get('seq') or m.get('seq')) or consts.get('MAX_CONTEXT') != seq:
        err(f'{out}: max_context_length {seq} / MAX_CONTEXT {consts.get("MAX_CONTEXT")} is not the plan\'s sequence')


STYLE_ON = {'ColwiseParallel': ('Linear', 'Embedding'), 'RowwiseParallel': ('Linear', 'Embedding'),
            'SequenceParallel': ('LayerNorm', 'LlamaRMSNorm'), 'PrepareModuleInput': None, 'PrepareModuleOutput': None}


def dtensor(out, plan):
    tree = ast.parse(open(out).read())
    for n in ast.walk(tree):
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in n.names] if isinstance(n, ast.Import) else [n.module]
            for m in mods:
                if m.split('.')[0] not in ('torch', 'contextlib'):
                    err(f'{out}: imports {m}')
        if isinstance(n, ast.Name) and n.id in ('eval', 'exec', 'os', 'subprocess', '__import__', 'open', 'system'):
            err(f'{out}: uses {n.id}')
    g = {n.targets[0].id: n.value for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)}
    missing = [k for k in ('MESH_DIM_NAMES', 'MESH_SHAPE', 'MODEL_CLASS', 'LAYER_PLANS', 'MODEL_PLAN') if k not in g]
    if missing or not any(isinstance(n, ast.FunctionDef) and n.name == 'parallelize' for n in tree.body):
        return err(f'{out}: no parallelize(model, world_mesh) with {", ".join(missing) or "its tables"}')
    lit = lambda k: ast.literal_eval(g[k])
    names, shape, cls = lit('MESH_DIM_NAMES'), lit('MESH_SHAPE'), lit('MODEL_CLASS')
    P = plan_facts(plan)
    size = lambda *ds: math.prod(s for n, s in zip(names, shape) if n in ds)
    expect(out, dict(world=math.prod(shape), tp=size('tp'), dp=size('dp_replicate', 'dp_shard'), pp=size('pp'), sp=size('cp')),
           {k: P[k] for k in ('world', 'tp', 'dp', 'pp', 'sp')})
    known = {}
    for line in open(os.path.join(HERE, 'hf_modules.txt')):
        if line.strip() and not line.startswith('#'):
            c, p, k = line.split()
            known[(c, p)] = k

    def style_ok(path, call, layer):
        st = call.func.id if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) else None
        if st not in STYLE_ON:
            err(f'{out}: {path}: {st} is not a ParallelStyle')
        elif cls is not None:
            k = known.get((cls, ('layer:' if layer else '') + path))
            if k is None:
                err(f'{out}: {cls} has no module {path}')
            elif STYLE_ON[st] and k not in STYLE_ON[st]:
                err(f'{out}: {st} on {path} ({k})')
    for layers, lp in zip(g['LAYER_PLANS'].keys, g['LAYER_PLANS'].values):
        if cls is not None and known.get((cls, layers.value)) != 'ModuleList':
            err(f'{out}: {cls} has no layer list {layers.value}')
        for k, v in zip(lp.keys, lp.values):
            style_ok(k.value, v, True)
    for k, v in zip(g['MODEL_PLAN'].keys, g['MODEL_PLAN'].values):
        style_ok(k.value, v, False)


def main():
    kind, out, planf = sys.argv[1:4]
    launch = sys.argv[4] if len(sys.argv) > 4 else None
    plan = json.load(open(planf))
    {'megatron': megatron, 'torchtitan': torchtitan, 'torchtitan-main': titan_main, 'dtensor': dtensor}.get(kind, lambda o, p: deepspeed(o, p, launch))(out, plan)
    for e in errors:
        print('FAIL:', e)
    sys.exit(1 if errors else 0)


if __name__ == '__main__':
    main()
