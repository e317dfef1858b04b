"""Keeps the code in docs/clients.md equal to the clients the interop suite
runs, so that every snippet there is one that was tested.

A snippet in the docs is a marker line followed by a fenced code block:

    <!-- snippet: interop/clients/nodemailer.js -->
    ```js
    ...the file, verbatim...
    ```

    docs_snippets.py check    prints what differs and exits 1 (run.sh runs it)
    docs_snippets.py update   rewrites every marked block from its file
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "clients.md")
BLOCK = re.compile(r"(<!-- snippet: (\S+) -->\n```[^\n]*\n)(.*?)(```\n)", re.S)
CLIENTS = "interop/clients"


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "check"
    with open(DOC, encoding="utf-8") as f:
        doc = f.read()
    problems = []
    seen = set()

    def replace(m):
        path = m.group(2)
        seen.add(path)
        try:
            with open(os.path.join(ROOT, path), encoding="utf-8") as f:
                code = f.read()
        except OSError as e:
            problems.append("%s: %s" % (path, e.strerror))
            return m.group(0)
        if m.group(3) != code:
            problems.append("the snippet of %s differs from the file" % path)
        return m.group(1) + code + m.group(4)

    updated = BLOCK.sub(replace, doc)
    for name in sorted(os.listdir(os.path.join(ROOT, CLIENTS))):
        path = CLIENTS + "/" + name
        if not name.startswith(("_", ".")) and os.path.isfile(os.path.join(ROOT, path)) and path not in seen:
            problems.append("%s has no snippet in docs/clients.md" % path)

    if mode == "update":
        if updated != doc:
            with open(DOC, "w", encoding="utf-8") as f:
                f.write(updated)
        problems = [p for p in problems if "differs" not in p]
    if problems:
        print("; ".join(problems) + " (interop/docs_snippets.py update rewrites the snippets)")
        sys.exit(1)


if __name__ == "__main__":
    main()
