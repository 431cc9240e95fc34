#!/usr/bin/env python3
"""hostile.py SBPC TINY.json BIG.json DIR: feed every exporter plans whose
strings are hostile (quotes, newlines, shell and Python code in model, op,
block, tensor and axis names, SBP strings, device and cluster names, the plan
file's name and the DeepSpeed config's name) and check that nothing escapes:
each export is refused (exit 1, no file) or writes a file whose code is only
what the exporter writes itself. The shell scripts are run with a fake
launcher on PATH and must not run any command of the plan's; the Python must
parse and reference no module but torch (the torchtitan config function: only
the imports of torchtitan_main_keys.txt, and no statement but the exporter's
imports, constants and functions); the TOML and JSON must load with no key the
tables do not list. Exit 1 with a line per escape."""
import ast, json, os, re, subprocess, sys, tomllib

sbpc, tiny, big, work = sys.argv[1:5]
os.makedirs(work, exist_ok=True)
here = os.path.dirname(os.path.abspath(__file__))
mark = os.path.join(work, 'PWNED')
evil = f'x"\'\n; touch {mark} #$(touch {mark})`touch {mark}`\\\nimport os; os.system("touch {mark}") #\n[evil]\nkey = 1'
bad = []


def hostile_plan(src, where):
    p = json.load(open(src))
    if where == 'names':
        p['model']['name'] = evil
        p['cluster']['name'] = evil
        for t in p['cluster'].get('node_types', []):
            t['name'] = evil
        for op in p['ops']:
            op['name'] = evil + op['name']
            if op.get('block'):
                op['block'] = evil
            op['inputs'] = [evil + (i or '') for i in op.get('inputs', [])]
        for b in p.get('boxing', []):
            b['op'], b['tensor'] = evil + b['op'], evil + (b.get('tensor') or '')
        p['mesh']['axes'] = [evil + a if a != 'tp' else a for a in p['mesh']['axes']]
    else:  # SBP strings: the hostile string, or one that is valid Python after a '#'
        code = evil if where == 'sbp' else f"B\nimport os\nos.system('touch {mark}')\n#"
        for op in p['ops']:
            op['sbp'] = [code for _ in op['sbp']]
            op['in_sbp'] = [[code] if isinstance(s, list) else code for s in op['in_sbp']]
    return p


def keys(name):
    return {l.split()[0] for l in open(os.path.join(here, name)) if l.strip() and not l.startswith('#')}


def shell_ok(path, launcher):
    """Only the exporter's own lines; running it executes nothing of the plan's."""
    allowed = re.compile(r'(set -eu|: "\$\{\w+:\?[^"`$]*\}"|export (CUDA_DEVICE_MAX_CONNECTIONS|DS_ACCELERATOR)=\w+.*|unset CUDA_DEVICE_MAX_CONNECTIONS.*'
                         r'|HOSTFILE=\$\{HOSTFILE:-hostfile\}|: >"\$HOSTFILE"|n=0|for h in \$HOSTS; do .*|\[ "\$n" -eq \d+ \] .*|'
                         + launcher + r' .*|  .*)')
    text = open(path).read()
    for line in text.split('\n'):
        if line and not line.startswith('#') and not allowed.fullmatch(line):
            bad.append(f'{path}: unexpected line {line[:80]!r}')
    if subprocess.run(['bash', '-n', path]).returncode:
        bad.append(f'{path}: not valid sh')
    fake = os.path.join(work, 'bin')
    os.makedirs(fake, exist_ok=True)
    for exe in ('torchrun', 'deepspeed'):
        with open(os.path.join(fake, exe), 'w') as f:
            f.write('#!/bin/sh\nexit 0\n')
        os.chmod(os.path.join(fake, exe), 0o755)
    env = dict(os.environ, PATH=fake + ':' + os.environ['PATH'], MASTER_ADDR='h0', NODE_RANK='0', HOSTS='h0 h1 h2 h3 h4 h5 h6 h7',
               NPROC_PER_NODE='8')
    subprocess.run(['sh', path], env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def python_ok(path):
    try:
        tree = ast.parse(open(path).read())
    except SyntaxError as e:
        return bad.append(f'{path}: not Python ({e})')
    for n in ast.walk(tree):
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            for m in ([a.name for a in n.names] if isinstance(n, ast.Import) else [n.module]):
                if m.split('.')[0] not in ('torch', 'contextlib'):
                    bad.append(f'{path}: imports {m}')
        if isinstance(n, ast.Name) and n.id in ('os', 'system', 'eval', 'exec', '__import__'):
            bad.append(f'{path}: names {n.id}')


def titan_ok(path):
    """The torchtitan config function: the table's imports, literal constants
    and the exporter's own functions, nothing else at the top level."""
    allowed = {tuple(l.split()[1:3]) for l in open(os.path.join(here, 'torchtitan_main_keys.txt')) if l.startswith('import ')}
    try:
        tree = ast.parse(open(path).read())
    except SyntaxError as e:
        return bad.append(f'{path}: not Python ({e})')
    for n in tree.body:
        if isinstance(n, ast.ImportFrom):
            ok = all((n.module, a.name) in allowed and not a.asname for a in n.names)
        elif isinstance(n, ast.Import):
            ok = all((a.name, '*') in allowed for a in n.names)
        elif isinstance(n, ast.Assign):
            ok = isinstance(n.value, ast.Constant) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name)
        else:
            ok = isinstance(n, ast.FunctionDef) and n.name in ('_init', '_layer', 'model_spec', 'sbpc_config')
        if not ok:
            bad.append(f'{path}: unexpected statement at line {n.lineno}')
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and n.id in ('os', 'system', 'eval', 'exec', '__import__'):
            bad.append(f'{path}: names {n.id}')


def run(fmt, plan, out, extra=()):
    r = subprocess.run([sbpc, 'export', fmt, plan, '-o', out, *extra], capture_output=True, text=True)
    if r.returncode not in (0, 1) or 'Sanitizer' in r.stderr or 'runtime error' in r.stderr:
        bad.append(f'export {fmt} {plan}: exit {r.returncode} {r.stderr[-200:]}')
    if r.returncode == 1 and os.path.exists(out):
        bad.append(f'export {fmt} {plan}: refused but wrote {out}')
    return r.returncode == 0


for i, (src, where) in enumerate([(tiny, 'names'), (big, 'names'), (tiny, 'sbp'), (big, 'sbp'), (tiny, 'sbp-code')]):
    plan = os.path.join(work, f'plan{i}\n"$(touch PWNED)`touch PWNED`.json')
    json.dump(hostile_plan(src, where), open(plan, 'w'))
    base = os.path.join(work, f'out{i}')
    if run('megatron', plan, base + '.sh'):
        shell_ok(base + '.sh', 'torchrun')
    cfg = os.path.join(work, f'ds{i}"$(touch PWNED)`touch PWNED`.json')
    if run('deepspeed', plan, cfg, ['--launch', base + '.ds.sh']):
        json.load(open(cfg))
        shell_ok(base + '.ds.sh', 'deepspeed')
    if run('torchtitan', plan, base + '.toml'):
        t = tomllib.load(open(base + '.toml', 'rb'))
        got = {f'{s}.{k}' for s, kv in t.items() for k in kv}
        if got - keys('torchtitan_keys.txt'):
            bad.append(f'{base}.toml: keys {got - keys("torchtitan_keys.txt")}')
    if run('torchtitan', plan, base + '.titan.py', ['--target', 'main']):
        titan_ok(base + '.titan.py')
    if run('dtensor', plan, base + '.py'):
        python_ok(base + '.py')
if os.path.exists(mark):
    bad.append('a command from the plan ran (PWNED exists)')
for b in bad:
    print('FAIL:', b)
sys.exit(1 if bad else 0)
