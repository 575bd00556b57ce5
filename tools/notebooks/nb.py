#!/usr/bin/python3
"""Builds the example notebooks from their plain-text sources, or checks them.

Sources live in tools/notebooks/src/ as NAME.KERNEL.txt, where KERNEL is
"gophernotes" (-> examples/NAME.ipynb) or "gonb" (-> examples/gonb/NAME.ipynb).
A source is a sequence of cells, each opened by a marker line:

    # %% md        a markdown cell
    # %%           a code cell

Usage (Debian's Python, which has nbformat; not a pyenv python3):
    /usr/bin/python3 tools/notebooks/nb.py build [NAME.KERNEL ...]   # write .ipynb, no outputs
    /usr/bin/python3 tools/notebooks/nb.py check                     # exit 1 if a notebook's cells differ from its source
    /usr/bin/python3 tools/notebooks/nb.py list [NAME.KERNEL ...]    # print the notebook paths

`build` drops stored outputs; tools/notebooks/regen.sh rebuilds and executes
in place so that the committed notebooks show their outputs.
"""
import glob
import os
import sys

import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SRC = os.path.join(HERE, "src")

KERNELS = {
    "gophernotes": {
        "kernelspec": {"name": "gophernotes", "display_name": "Go (gophernotes)", "language": "go"},
        "language_info": {"name": "go", "file_extension": ".go", "mimetype": "application/x-go"},
        "dir": "examples",
    },
    "gonb": {
        "kernelspec": {"name": "gonb", "display_name": "Go (gonb)", "language": "go"},
        "language_info": {"name": "go", "file_extension": ".go", "mimetype": "text/x-go"},
        "dir": os.path.join("examples", "gonb"),
    },
}


def sources():
    return sorted(glob.glob(os.path.join(SRC, "*.*.txt")))


def target(src):
    name, kernel, _ = os.path.basename(src).rsplit(".", 2)
    if kernel not in KERNELS:
        sys.exit(f"{src}: unknown kernel {kernel!r}")
    return kernel, os.path.join(ROOT, KERNELS[kernel]["dir"], name + ".ipynb")


def parse(src):
    """Returns [(kind, text)] with kind "md" or "code"."""
    cells, kind, lines = [], None, []
    with open(src, encoding="utf-8") as f:
        for n, line in enumerate(f.read().split("\n"), 1):
            s = line.rstrip()
            if s in ("# %% md", "# %%"):
                if kind is not None:
                    cells.append((kind, "\n".join(lines).strip("\n")))
                kind, lines = ("md" if s.endswith("md") else "code"), []
            elif kind is None:
                if s:
                    sys.exit(f"{src}:{n}: text before the first '# %%' marker")
            else:
                lines.append(line)
    if kind is not None:
        cells.append((kind, "\n".join(lines).strip("\n")))
    return cells


def build(src):
    kernel, out = target(src)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = KERNELS[kernel]["kernelspec"]
    nb.metadata["language_info"] = KERNELS[kernel]["language_info"]
    for kind, text in parse(src):
        if kind == "md":
            nb.cells.append(nbformat.v4.new_markdown_cell(text))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(text))
    # Stable ids, so that a rebuild does not change every cell.
    for i, c in enumerate(nb.cells):
        c["id"] = f"cell-{i:02d}"
    os.makedirs(os.path.dirname(out), exist_ok=True)
    nbformat.write(nb, out)
    print(os.path.relpath(out, ROOT))


def check():
    bad = 0
    for src in sources():
        _, out = target(src)
        rel = os.path.relpath(out, ROOT)
        if not os.path.exists(out):
            print(f"{rel}: missing (build it from {os.path.relpath(src, ROOT)})")
            bad += 1
            continue
        nb = nbformat.read(out, as_version=4)
        want = [("md" if k == "md" else "code", t) for k, t in parse(src)]
        got = [("md" if c.cell_type == "markdown" else "code", c.source) for c in nb.cells]
        if want != got:
            print(f"{rel}: cells differ from {os.path.relpath(src, ROOT)}; run tools/notebooks/regen.sh")
            bad += 1
    return bad


def main(argv):
    cmd = argv[1] if len(argv) > 1 else "build"
    if cmd == "build":
        names = argv[2:]
        srcs = [os.path.join(SRC, n + ".txt") for n in names] if names else sources()
        for s in srcs:
            build(s)
    elif cmd == "check":
        sys.exit(1 if check() else 0)
    elif cmd == "list":
        names = argv[2:]
        for s in [os.path.join(SRC, n + ".txt") for n in names] if names else sources():
            print(os.path.relpath(target(s)[1], ROOT))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
