#!/usr/bin/env python3
"""check_export.py KIND OUT PLAN.json [LAUNCH]: check one `sbpc export` output
against the target's known flags/keys and their constraints (the tables in
this folder, written from the upstream sources named in each), and check that
the values the target would parse equal the plan. KIND: megatron, deepspeed
(OUT the JSON, LAUNCH the --launch script), torchtitan, dtensor. Exit 1 with
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
    {'megatron': megatron, 'torchtitan': torchtitan, 'dtensor': dtensor}.get(kind, lambda o, p: deepspeed(o, p, launch))(out, plan)
    for e in errors:
        print('FAIL:', e)
    sys.exit(1 if errors else 0)


if __name__ == '__main__':
    main()
