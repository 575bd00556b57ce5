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
    /usr/bin/python3 tools/notebooks/nb.py run IN OUT [KERNEL_LOG]   # execute; on a failing cell print it and its output, exit 1
    /usr/bin/python3 tools/notebooks/nb.py store NB.ipynb ...        # normalise executed outputs in place (regen.sh)
    /usr/bin/python3 tools/notebooks/nb.py compare STORED EXECUTED   # exit 1 if the stored outputs are missing or stale

`build` drops stored outputs; tools/notebooks/regen.sh rebuilds, executes and
stores them, so that the committed notebooks show their outputs. Stored
outputs are normalised (see normalise): the gophernotes kernel's import
warnings and stray values are dropped, absolute paths of the checkout are
written <repository>, execution counts are not kept. .ci/notebooks executes
every notebook afresh and compares its normalised outputs with the stored
ones, so a notebook whose outputs were stripped or are out of date fails.
"""
import base64
import re
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


# Lines gomacro (gophernotes) prints into a cell's output while it imports
# a package: not part of what the notebook shows.
GOMACRO_CHATTER = re.compile(r"^// (warning|debug): ")
# cybertron's converter prints this (with a temporary path) on stdout while
# it converts a Hugging Face checkpoint; .ci/run drops it from test logs too.
CONVERTER_CHATTER = re.compile(r'^Serializing model to ".*"\.\.\. Done\.\s*$')


def kernel_of(nb):
    return nb.metadata.get("kernelspec", {}).get("name", "")


def normalise(nb):
    """Returns nb with its outputs as they are stored and compared."""
    roots = {ROOT, os.path.realpath(ROOT)}
    gophernotes = kernel_of(nb) == "gophernotes"

    def paths(text):
        for r in sorted(roots, key=len, reverse=True):
            text = text.replace(r, "<repository>")
        return text

    for c in nb.cells:
        if c.cell_type != "code":
            continue
        c.execution_count = None
        c.metadata = {}
        # Kernels send a stream in pieces (one line may arrive in several):
        # join consecutive pieces of a stream before filtering lines.
        joined = []
        for o in c.get("outputs", []):
            if o.output_type == "stream" and joined and joined[-1].output_type == "stream" and joined[-1].name == o.name:
                joined[-1].text += o.text
            else:
                joined.append(o)
        outs = []
        for o in joined:
            if o.output_type == "stream":
                lines = o.text.splitlines(keepends=True)
                if gophernotes:
                    lines = [l for l in lines if not GOMACRO_CHATTER.match(l)]
                lines = [l for l in lines if not CONVERTER_CHATTER.match(l)]
                text = paths("".join(lines))
                if not text:
                    continue
                if outs and outs[-1].output_type == "stream" and outs[-1].name == o.name:
                    outs[-1].text += text
                    continue
                o.text = text
            elif o.output_type in ("execute_result", "display_data"):
                data = dict(o.get("data", {}))
                # gophernotes shows the value of a cell's last expression
                # (e.g. fmt.Println's "64 <nil>"): a stray value, unless
                # the cell returns something to display (an image).
                if gophernotes and o.output_type == "execute_result" and set(data) <= {"text/plain"}:
                    continue
                for k, v in list(data.items()):
                    if isinstance(v, str) and not k.startswith("image/"):
                        data[k] = paths(v)
                o = nbformat.v4.new_output("display_data", data=data, metadata=o.get("metadata", {}))
            elif o.output_type == "error":
                o.traceback = [paths(t) for t in o.get("traceback", [])]
            outs.append(o)
        c.outputs = outs
    return nb


def store(paths):
    for p in paths:
        nb = normalise(nbformat.read(p, as_version=4))
        nbformat.write(nb, p)


def describe(o):
    if o.output_type == "stream":
        return f"{o.name}: {o.text!r}"
    if o.output_type == "error":
        return f"error {o.get('ename')}: {o.get('evalue')}"
    parts = []
    for k, v in sorted(o.get("data", {}).items()):
        if k.startswith("image/"):
            raw = base64.b64decode(v) if isinstance(v, str) else b""
            parts.append(f"{k} ({len(raw)} bytes)")
        else:
            parts.append(f"{k}: {str(v)[:200]!r}")
    return "display " + ", ".join(parts)


def compare(stored_path, executed_path):
    stored = normalise(nbformat.read(stored_path, as_version=4))
    fresh = normalise(nbformat.read(executed_path, as_version=4))
    rel = os.path.relpath(stored_path, ROOT)
    if len(stored.cells) != len(fresh.cells):
        print(f"{rel}: {len(stored.cells)} cells stored, {len(fresh.cells)} executed")
        return 1
    bad = 0
    for i, (a, b) in enumerate(zip(stored.cells, fresh.cells)):
        if a.cell_type != "code":
            continue
        want = [describe(o) for o in b.outputs]
        got = [describe(o) for o in a.outputs]
        if got == want and all(x == y for x, y in zip(a.outputs, b.outputs)):
            continue
        bad += 1
        what = "missing" if not a.outputs and b.outputs else "stale"
        print(f"{rel}: cell {i}: stored outputs are {what}; run tools/notebooks/regen.sh")
        for k in range(max(len(got), len(want))):
            g = got[k] if k < len(got) else "(none)"
            w = want[k] if k < len(want) else "(none)"
            if g != w or (k < len(a.outputs) and k < len(b.outputs) and a.outputs[k] != b.outputs[k]):
                print(f"    stored:   {g[:300]}")
                print(f"    executed: {w[:300]}")
                break
    return bad


def run(src, dst, kernel_log=os.devnull):
    """Executes src into dst with nbclient, the kernel's own output (gomacro's
    progress, GoNB's log) going to kernel_log. On a failing cell it prints
    the cell and everything it printed (a GoNB panic is in its stderr) on
    stderr, and returns 1."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(src, as_version=4)
    client = NotebookClient(nb, timeout=900, resources={"metadata": {"path": os.path.dirname(os.path.abspath(src))}})
    import shutil
    import subprocess
    import tempfile

    env = dict(os.environ)
    # A private temporary directory per run: the GoNB notebooks pass files
    # between cells through $TMPDIR/gopeft-gonb-NAME, which another run on
    # the same machine (another checkout's CI) would otherwise share.
    private = [tempfile.mkdtemp(prefix="gopeft-nb-")]
    env["TMPDIR"] = private[0]
    if kernel_of(nb) == "gophernotes":
        # gomacro builds its import plugins under $GOPATH/src/gomacro.imports
        # and every gophernotes kernel empties that directory at its first
        # import, so two kernels on one machine break each other's builds.
        # A private GOPATH (same module cache) isolates it.
        env["GOMODCACHE"] = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
        private.append(tempfile.mkdtemp(prefix="gopeft-gomacro-"))
        env["GOPATH"] = private[-1]
    failed = None
    try:
        with open(kernel_log, "ab") as log:
            try:
                client.execute(stdout=log, stderr=log, env=env)
            except CellExecutionError as e:
                failed = e
    finally:
        for d in private:
            shutil.rmtree(d, ignore_errors=True)
    nbformat.write(nb, dst)
    if failed is None:
        return 0
    rel = os.path.relpath(src, ROOT)
    out = sys.stderr
    for i, c in enumerate(nb.cells):
        errs = [o for o in c.get("outputs", []) if o.output_type == "error"]
        if c.cell_type != "code" or (not errs and i != _last_executed(nb)):
            continue
        print(f"{rel}: cell {i} failed:", file=out)
        for line in c.source.splitlines()[:12]:
            print(f"    | {line}", file=out)
        # A kernel may send a panic in many small stream messages: join
        # consecutive ones of the same stream before printing.
        merged = []
        for o in c.get("outputs", []):
            if o.output_type == "stream" and merged and merged[-1][0] == o.name:
                merged[-1][1].append(o.text)
            elif o.output_type == "stream":
                merged.append((o.name, [o.text], None))
            else:
                merged.append((None, None, o))
        for name, texts, o in merged:
            if name is not None:
                for line in "".join(texts).rstrip("\n").splitlines()[-40:]:
                    print(f"    {name}: {line}", file=out)
            elif o.output_type == "error":
                print(f"    error: {o.get('ename')}: {o.get('evalue')}", file=out)
                for t in o.get("traceback", [])[-20:]:
                    print(f"    {strip_ansi(t)}", file=out)
        break
    else:
        print(f"{rel}: {str(failed).strip().splitlines()[-1] if str(failed).strip() else failed}", file=out)
    return 1


def _last_executed(nb):
    last = -1
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code" and c.get("execution_count") is not None:
            last = i
    return last


def strip_ansi(s):
    return re.sub(r"\x1b\[[0-9;]*m", "", s)


def selftest():
    """Checks normalise and compare on made-up notebooks (no kernel): CI
    must fail on stripped or stale outputs and store no kernel chatter,
    stray values or absolute paths."""
    import tempfile

    def make(kernel, outputs):
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = KERNELS[kernel]["kernelspec"]
        c = nbformat.v4.new_code_cell("fmt.Println(1)")
        c.outputs = [nbformat.v4.new_output(**o) for o in outputs]
        c.execution_count = 3
        nb.cells.append(c)
        return nb

    fresh = [
        {"output_type": "stream", "name": "stdout", "text": "// warning: skipping import of func sync.OnceValue\n"},
        {"output_type": "stream", "name": "stdout", "text": 'Serializing model to "/tmp/x/spago_model.bin"...'},
        {"output_type": "stream", "name": "stdout", "text": " Done.\n"},
        {"output_type": "stream", "name": "stdout", "text": "model in " + ROOT + "/examples\n"},
        {"output_type": "execute_result", "data": {"text/plain": "64 <nil>"}, "execution_count": 3},
    ]
    n = normalise(make("gophernotes", fresh))
    outs = n.cells[0].outputs
    assert len(outs) == 1 and outs[0].text == "model in <repository>/examples\n", outs
    assert n.cells[0].execution_count is None
    png = {"output_type": "execute_result", "execution_count": 1,
           "data": {"image/png": base64.b64encode(b"\x89PNG...").decode(), "text/plain": "[loss curve]"}}
    assert len(normalise(make("gophernotes", [png])).cells[0].outputs) == 1, "an image is not a stray value"
    gonb = normalise(make("gonb", [{"output_type": "execute_result", "data": {"text/plain": "x"}, "execution_count": 1}]))
    assert len(gonb.cells[0].outputs) == 1
    with tempfile.TemporaryDirectory() as d:
        def write(name, nb):
            p = os.path.join(d, name)
            nbformat.write(nb, p)
            return p
        executed = write("executed.ipynb", make("gophernotes", fresh))
        same = write("same.ipynb", normalise(make("gophernotes", fresh)))
        stripped = write("stripped.ipynb", make("gophernotes", []))
        stale = write("stale.ipynb", make("gophernotes", [{"output_type": "stream", "name": "stdout", "text": "model in <repository>/old\n"}]))
        quiet = open(os.devnull, "w")
        old, sys.stdout = sys.stdout, quiet
        try:
            results = [compare(p, executed) for p in (same, stripped, stale)]
        finally:
            sys.stdout = old
        assert results[0] == 0 and results[1] == 1 and results[2] == 1, results
    print("nb.py selftest: ok")


def main(argv):
    cmd = argv[1] if len(argv) > 1 else "build"
    if cmd == "build":
        names = argv[2:]
        srcs = [os.path.join(SRC, n + ".txt") for n in names] if names else sources()
        for s in srcs:
            build(s)
    elif cmd == "check":
        sys.exit(1 if check() else 0)
    elif cmd == "selftest":
        selftest()
    elif cmd == "store":
        store(argv[2:])
    elif cmd == "compare":
        if len(argv) != 4:
            sys.exit(__doc__)
        sys.exit(1 if compare(argv[2], argv[3]) else 0)
    elif cmd == "run":
        if len(argv) not in (4, 5):
            sys.exit(__doc__)
        sys.exit(run(*argv[2:]))
    elif cmd == "list":
        names = argv[2:]
        for s in [os.path.join(SRC, n + ".txt") for n in names] if names else sources():
            print(os.path.relpath(target(s)[1], ROOT))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
