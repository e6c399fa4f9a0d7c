"""A second Django process for tests: runs Python statements sent on stdin.

Each input line is a JSON string of Python code; the process executes it in
one persistent namespace and answers with one JSON line: {"result": repr of
the variable `result`} or {"error": "..."}. Start it with the test's
database in DATABASE_URL (the `db_env` fixture).
"""

import json
import os
import sys
import traceback

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

namespace: dict = {}
for line in sys.stdin:
    code = json.loads(line)
    namespace.pop("result", None)
    try:
        exec(code, namespace)  # noqa: S102 - test driver
        answer = {"result": namespace.get("result")}
    except Exception:
        answer = {"error": traceback.format_exc()}
    print(json.dumps(answer, default=repr), flush=True)
