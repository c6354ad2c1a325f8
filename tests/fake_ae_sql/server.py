#!/usr/bin/env python3
"""A fake of the Workers Analytics Engine SQL API whose queries run on real ClickHouse (chDB).

- `POST /client/v4/accounts/<account>/analytics_engine/sql`, the SQL as the body,
  `Authorization: Bearer <token>`: the documented API. A query is first held to Analytics
  Engine's dialect (ae_sql_reference.toml, the functions, clauses and operators Cloudflare's SQL
  reference documents): anything else is refused with 422 and Cloudflare's error envelope. Then
  it runs, unchanged, on ClickHouse over a table with Analytics Engine's schema named after the
  dataset; ClickHouse's errors come back the same way. The answer is ClickHouse's `FORMAT JSON`
  (`meta`, `data`, `rows`, `rows_before_limit_at_least` with a LIMIT; 64-bit integers quoted),
  without its timing `statistics`.
- The table holds the points of the local mirror (`analytics_points_local` in a wrangler D1
  SQLite file, copied before every query; unwritten blobs read as '' and doubles as 0, as in
  Analytics Engine), or the points tests post to `POST /_fake/points`.
- `GET /_fake/calls` lists the API requests received (`sql`, `status`);
  `POST /_fake/calls/clear` forgets them. `POST /_fake/clickhouse` runs SQL on the same engine
  without the dialect check (tests use it to show what ClickHouse alone accepts).

Usage:
  server.py --version                 prints the engine line
  server.py serve --account A --token T --dataset D [--d1 FILE]
      binds 127.0.0.1 on a free port, prints one JSON line {"port": ..., "engine": ...}, serves
      until its standard input closes (so it never outlives the process that started it)
  server.py check [--dataset D]       reads a JSON array of SQL texts on stdin and prints, for
      each, the documented features it uses or why it is refused (no engine needed)

Only the Python standard library and chdb (pinned in the Makefile) are used.
"""

import json
import os
import re
import sqlite3
import sys
import threading
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE_FILE = os.path.join(HERE, "ae_sql_reference.toml")


# ---- the dialect ----------------------------------------------------------------------------


class Refused(Exception):
    """A query outside Analytics Engine's documented SQL."""


class Reference:
    """ae_sql_reference.toml, indexed for the checker."""

    def __init__(self, path=REFERENCE_FILE):
        with open(path, "rb") as f:
            ref = tomllib.load(f)
        self.checked = ref["checked"]
        base = ref["base"]
        self.pages = {}  # feature -> page URL
        self.keywords = {}  # upper-case phrase -> feature
        for section in ("statements", "operators", "literals"):
            for kw in ref[section]["keywords"]:
                self.keywords[kw.upper()] = kw
                self.pages[kw] = base + ref[section]["page"]
        self.formats = set(ref["statements"]["formats"])
        del self.pages["FORMAT"]  # recorded as FORMAT <format>
        for fmt in self.formats:
            self.pages["FORMAT " + fmt] = base + ref["statements"]["page"]
        self.symbols = set(ref["operators"]["symbols"])
        for sym in self.symbols:
            self.pages[sym] = base + ref["operators"]["page"]
        self.units = {u.upper() for u in ref["literals"]["interval_units"]}
        for kind in ("string literals", "numeric literals"):
            self.pages[kind] = base + ref["literals"]["page"]
        self.functions = {}  # lower-case name -> documented spelling
        for page, group in ref["functions"].items():
            for name in group["names"]:
                self.functions[name.lower()] = name
                self.pages[name + "()"] = base + page + "/#" + name.lower()
        self.distinct = {n.lower() for n in ref["functions"]["aggregate-functions"]["distinct"]}
        for name in self.distinct:
            spelled = self.functions[name]
            self.pages[spelled + "(DISTINCT ...)"] = base + "aggregate-functions/#" + name
        cols = ref["columns"]
        self.columns = set(cols["names"])
        for prefix, n in cols["numbered"].items():
            self.columns.update(f"{prefix}{i}" for i in range(1, n + 1))
        self.pages["dataset columns"] = cols["page"]
        self.runs_as = {k.lower(): v for k, v in ref["runs_as"].items()}
        # Phrases first (longest match), e.g. NOT IN before NOT.
        self.phrases = sorted(
            (tuple(k.split()) for k in self.keywords), key=len, reverse=True
        )


TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*)
  | (?P<str>'(?:[^'\\]|'')*')
  | (?P<num>\d+(?:\.\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<sym><=|>=|<>|!=|[-+*/%=<>(),])
    """,
    re.VERBOSE,
)


def tokenize(sql, spans=None):
    tokens = []
    pos = 0
    while pos < len(sql):
        m = TOKEN.match(sql, pos)
        if not m:
            rest = sql[pos : pos + 20]
            if sql[pos] == "'":
                raise Refused(
                    "unterminated string or a backslash escape (not documented): " + rest
                )
            raise Refused(f"{sql[pos]!r} is not part of Analytics Engine's SQL (at {rest!r})")
        pos = m.end()
        kind = m.lastgroup
        if kind in ("ws", "comment"):
            continue
        tokens.append((kind, m.group()))
        if spans is not None:
            spans.append(m.span())
    return tokens


def runnable(sql, ref):
    """`sql` as ClickHouse runs what Analytics Engine documents: the names ClickHouse spells
    differently renamed (see [runs_as] in the reference), and `LIMIT ALL` (documented: no
    restriction; ClickHouse has no such clause) left out. Nothing else changes."""
    spans = []
    tokens = tokenize(sql, spans)
    words = [t[1].upper() if t[0] == "ident" else None for t in tokens]
    out, last = [], 0
    for i, ((kind, text), (start, end)) in enumerate(zip(tokens, spans)):
        calls = i + 1 < len(tokens) and tokens[i + 1][1] == "("
        if kind == "ident" and calls and text.lower() in ref.runs_as:
            out.append(sql[last:start] + ref.runs_as[text.lower()])
            last = end
        elif words[i] == "LIMIT" and i + 1 < len(tokens) and words[i + 1] == "ALL":
            out.append(sql[last:start])
            last = spans[i + 1][1]
    return "".join(out) + sql[last:]


def check(sql, ref, dataset):
    """The documented features `sql` uses (a sorted list), or Refused."""
    tokens = tokenize(sql)
    if not tokens:
        raise Refused("empty query")
    words = [t[1].upper() if t[0] == "ident" else None for t in tokens]
    used = set()
    aliases = {
        tokens[i + 1][1]
        for i in range(len(tokens) - 1)
        if words[i] == "AS" and tokens[i + 1][0] == "ident"
    }
    for alias in aliases:
        if alias.upper() in ref.keywords or alias.upper() in ("JOIN", "UNION", "WITH"):
            raise Refused(f"alias {alias} is a keyword")
    if words[0] == "SHOW":
        if words[1:] == ["TABLES"] or words[1:3] == ["TABLES", "FORMAT"]:
            pass
        else:
            raise Refused("only SHOW TABLES is served by this fake")
    elif words[0] != "SELECT":
        raise Refused("only SELECT and SHOW TABLES statements are documented")

    def is_call(j):
        # An identifier before "(" calls a function, unless it is a keyword (IN (...), AND (...),
        # FROM (SELECT ...)); format(...) is both a documented function and the FORMAT keyword.
        if j + 1 >= len(tokens) or tokens[j + 1][1] != "(" or tokens[j][0] != "ident":
            return False
        return words[j] == "FORMAT" or words[j] not in ref.keywords and words[j] != "DISTINCT"

    # Open parentheses: the function they call (lower case) or None.
    stack = []
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        word = words[i]
        prev_word = words[i - 1] if i > 0 else None
        if kind in ("str", "num"):
            used.add("string literals" if kind == "str" else "numeric literals")
            i += 1
            continue
        if kind == "sym":
            if text == "(":
                callee = None
                if i > 0 and tokens[i - 1][0] == "ident" and is_call(i - 1):
                    callee = tokens[i - 1][1].lower()
                stack.append(callee)
            elif text == ")":
                if not stack:
                    raise Refused("unbalanced parentheses")
                stack.pop()
            elif text in ref.symbols:
                used.add(text)
            elif text != ",":
                raise Refused(f"operator {text} is not documented")
            i += 1
            continue
        # An identifier: a keyword phrase, a function, a column, the dataset or an alias.
        if is_call(i):
            name = text.lower()
            if name not in ref.functions:
                raise Refused(f"{text}(...) is not in Analytics Engine's SQL reference")
            if i + 2 >= len(words) or words[i + 2] != "DISTINCT":
                used.add(ref.functions[name] + "()")
            i += 1
            continue
        phrase = next(
            (p for p in ref.phrases if tuple(words[i : i + len(p)]) == p), None
        )
        if phrase is not None:
            feature = ref.keywords[" ".join(phrase)]
            in_from = i >= 2 and tokens[i - 1][1] == "(" and words[i - 2] == "FROM"
            if feature == "SELECT" and i > 0 and not in_from:
                # Only `FROM (SELECT ...)` is documented.
                raise Refused("a SELECT is documented only as the query or in FROM (...)")
            if feature == "FORMAT":
                rest = [t[1] for t in tokens[i + 1 :]]
                if len(rest) != 1 or rest[0] not in ref.formats:
                    raise Refused(
                        "FORMAT must end the query and be one of "
                        + ", ".join(sorted(ref.formats))
                    )
                used.add("FORMAT " + rest[0])
                i += 2
                continue
            if feature == "INTERVAL":
                # INTERVAL '<n>' <unit>
                if (
                    i + 2 >= len(tokens)
                    or tokens[i + 1][0] not in ("str", "num")
                    or words[i + 2] not in ref.units
                ):
                    raise Refused("INTERVAL must be written INTERVAL '<n>' <unit>")
                used.add("INTERVAL")
                i += 3
                continue
            used.add(feature)
            i += len(phrase)
            continue
        if word == "DISTINCT":
            callee = stack[-1] if stack else None
            if prev_word is None and tokens[i - 1][1] == "(" and callee in ref.distinct:
                used.add(ref.functions[callee] + "(DISTINCT ...)")
                i += 1
                continue
            raise Refused("DISTINCT is documented only in count(...), sum(...) and avg(...)")
        if word in ref.units and stack and stack[-1] == "extract" and tokens[i - 1][1] == "(":
            # extract(<unit> FROM <datetime>)
            i += 1
            continue
        if text in ref.columns or text == dataset or text in aliases:
            if text in ref.columns:
                used.add("dataset columns")
            i += 1
            continue
        raise Refused(
            f"{text} is not a column of the dataset, an alias or part of Analytics Engine's SQL"
        )
    if stack:
        raise Refused("unbalanced parentheses")
    return sorted(used)


# ---- the engine -----------------------------------------------------------------------------


def columns():
    """(name, ClickHouse type, SQLite expression reading it from the mirror)."""
    cols = [
        ("dataset", "String", "dataset"),
        ("timestamp", "DateTime", "timestamp"),
        ("_sample_interval", "UInt32", "ifnull(_sample_interval, 1)"),
        ("index1", "String", "ifnull(index1, '')"),
    ]
    cols += [(f"blob{i}", "String", f"ifnull(blob{i}, '')") for i in range(1, 21)]
    cols += [(f"double{i}", "Float64", f"ifnull(double{i}, 0)") for i in range(1, 21)]
    return cols


def engine_line():
    import chdb

    version = chdb.query("SELECT version()", "CSV").bytes().decode().strip().strip('"')
    return f"chDB {chdb.__version__} (ClickHouse {version})"


class Engine:
    def __init__(self, dataset, d1_file):
        from chdb import session

        self.dataset = dataset
        self.d1_file = d1_file
        self.lock = threading.Lock()
        self.session = session.Session()
        # Analytics Engine answers in UTC and quotes 64-bit integers, as ClickHouse's JSON did
        # by default for years.
        self.session.query("SET session_timezone = 'UTC'")
        self.session.query("SET output_format_json_quote_64bit_integers = 1")
        cols = ", ".join(f"`{n}` {t}" for n, t, _ in columns())
        self.session.query(
            f"CREATE TABLE `{dataset}` ({cols}) ENGINE = MergeTree ORDER BY timestamp"
        )

    def insert(self, points):
        """points: [{"timestamp", "_sample_interval", "values": {column: value}}]."""
        names = {n for n, _, _ in columns()}
        rows = []
        for p in points:
            row = {
                "dataset": self.dataset,
                "timestamp": p["timestamp"],
                "_sample_interval": p.get("_sample_interval", 1),
            }
            for k, v in p.get("values", {}).items():
                if k not in names:
                    raise ValueError(f"{k} is not a column")
                row[k] = v
            rows.append(json.dumps(row))
        if rows:
            with self.lock:
                self._insert_rows(rows)

    def _insert_rows(self, rows):
        self.session.query(
            f"INSERT INTO `{self.dataset}` FORMAT JSONEachRow\n" + "\n".join(rows) + "\n"
        )

    def refresh(self):
        """Copies the local mirror's points (when serving a D1 file)."""
        if not self.d1_file:
            return
        cols = columns()
        select = ", ".join(expr for _, _, expr in cols)
        db = sqlite3.connect(f"file:{self.d1_file}?mode=ro", uri=True, timeout=5)
        try:
            found = db.execute(f"SELECT {select} FROM analytics_points_local").fetchall()
        finally:
            db.close()
        rows = [json.dumps(dict(zip((n for n, _, _ in cols), r))) for r in found]
        self.session.query(f"TRUNCATE TABLE `{self.dataset}`")
        if rows:
            self._insert_rows(rows)

    def query(self, sql):
        """(status, body, content type) for the SQL `sql`, already checked."""
        with self.lock:
            try:
                self.refresh()
            except sqlite3.Error as e:
                return 422, cloudflare_error(1000, f"copying the local mirror: {e}"), JSON
            ends_with_format = re.search(r"\bFORMAT\s+(\w+)\s*$", sql, re.IGNORECASE)
            fmt = ends_with_format.group(1) if ends_with_format else "JSON"
            try:
                result = self.session.query(sql, fmt).bytes().decode()
            except Exception as e:  # chdb raises its own error types for ClickHouse errors
                return 422, cloudflare_error(1000, clickhouse_message(str(e))), JSON
        if fmt != "JSON":
            return 200, result, "text/plain; charset=utf-8"
        answer = json.loads(result)
        answer.pop("statistics", None)
        return 200, json.dumps(answer), JSON


JSON = "application/json"


def clickhouse_message(text):
    first = text.strip().splitlines()[0] if text.strip() else text
    return "ClickHouse: " + re.sub(r"^Code: \d+\. DB::Exception: ", "", first)


def cloudflare_error(code, message):
    return json.dumps(
        {
            "success": False,
            "errors": [{"code": code, "message": message}],
            "messages": [],
            "result": None,
        }
    )


# ---- the HTTP server ------------------------------------------------------------------------


def make_handler(engine, ref, account, token, calls, calls_lock):
    api_path = f"/client/v4/accounts/{account}/analytics_engine/sql"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, status, body, content_type=JSON):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n).decode("utf-8", "replace")

        def do_GET(self):
            if self.path == "/_fake/calls":
                with calls_lock:
                    return self.reply(200, json.dumps(calls))
            self.reply(404, cloudflare_error(7003, "Could not route to the requested URL"))

        def do_POST(self):
            body = self.body()
            if self.path == "/_fake/points":
                try:
                    engine.insert(json.loads(body))
                except Exception as e:
                    return self.reply(400, cloudflare_error(1000, str(e)))
                return self.reply(200, "{}")
            if self.path == "/_fake/clickhouse":
                # Test-only: the same engine without the dialect check, to show what ClickHouse
                # alone would accept.
                return self.reply(*engine.query(body))
            if self.path == "/_fake/calls/clear":
                with calls_lock:
                    calls.clear()
                return self.reply(200, "{}")
            if self.path != api_path:
                return self.reply(
                    404, cloudflare_error(7003, "Could not route to the requested URL")
                )
            if self.headers.get("Authorization") != f"Bearer {token}":
                status, answer, ctype = 401, cloudflare_error(10000, "Authentication error"), JSON
            else:
                try:
                    check(body, ref, engine.dataset)
                    status, answer, ctype = engine.query(runnable(body, ref))
                except Refused as e:
                    status, answer, ctype = 422, cloudflare_error(1000, f"refused: {e}"), JSON
            if status != 200:
                print(f"fake SQL API: {status} for {body!r}: {answer}", file=sys.stderr, flush=True)
            with calls_lock:
                calls.append({"sql": body, "status": status})
            self.reply(status, answer, ctype)

        def do_PUT(self):
            self.reply(404, cloudflare_error(7003, "Could not route to the requested URL"))

    return Handler


def serve(args):
    opts = dict(zip(args[::2], args[1::2]))
    ref = Reference()
    engine = Engine(opts["--dataset"], opts.get("--d1"))
    calls, calls_lock = [], threading.Lock()
    handler = make_handler(engine, ref, opts["--account"], opts["--token"], calls, calls_lock)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"port": server.server_address[1], "engine": engine_line()}), flush=True)
    # Serve until the parent closes our standard input (or dies).
    sys.stdin.buffer.read()
    os._exit(0)


def main():
    args = sys.argv[1:]
    if args == ["--version"]:
        print("AE SQL fake: " + engine_line())
    elif args[:1] == ["serve"]:
        serve(args[1:])
    elif args[:1] == ["check"]:
        opts = dict(zip(args[1::2], args[2::2]))
        dataset = opts.get("--dataset", "telegram_bot_events")
        ref = Reference()
        out = []
        for sql in json.load(sys.stdin):
            try:
                out.append({"features": check(sql, ref, dataset), "error": None})
            except Refused as e:
                out.append({"features": None, "error": str(e)})
        print(json.dumps({"checked": ref.checked, "pages": ref.pages, "results": out}))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
