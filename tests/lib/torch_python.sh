# torch_python.sh — sourced by the tests and benchmarks that compare with
# PyTorch: sets PY to the first interpreter that can `import torch`
# ($SBPC_TORCH_PYTHON, then /usr/bin/python3, where Debian's python3-torch
# lives and which may not be the first python3 on PATH, then python3), or
# to the empty string when none can.
PY=
for p in "${SBPC_TORCH_PYTHON:-}" /usr/bin/python3 python3; do
  [ -n "$p" ] && "$p" -c 'import torch' 2>/dev/null && { PY=$p; break; }
done
