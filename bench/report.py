#!/usr/bin/python3
"""report.py -- parse wrk's output and print bench/run.sh's table of medians.

  report.py parse WRK_OUTPUT          prints "RPS P50_US P99_US ERRORS" (one line)
  report.py table RESULTS MARKDOWN    prints the table of medians, writes it as markdown
  report.py syscalls COUNTS MARKDOWN  writes system calls per request as markdown, prints it

RESULTS holds one line per wrk run: "ROUND SCENARIO TARGET RPS P50_US P99_US ERRORS".
COUNTS holds one line per counted system call: "SCENARIO TARGET NAME COUNT REQUESTS"
(NAME "all" is every system call).
"""
import statistics
import sys

SCENARIOS = [
    ("get", "GET, 64 conns"),
    ("post1k", "POST 1 KiB, 64 conns"),
    ("post64k", "POST 64 KiB, 64 conns"),
    ("lat1", "GET, 1 conn"),
]
TARGETS = ["direct", "flint", "nginx", "haproxy"]
UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def to_us(text):
    """wrk prints durations as 12.34us, 1.20ms, 2.00s."""
    for unit in sorted(UNITS, key=len, reverse=True):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * UNITS[unit]
    raise ValueError("not a wrk duration: " + text)


def parse(path):
    rps = p50 = p99 = None
    errors = 0
    with open(path) as f:
        for line in f:
            w = line.split()
            if line.startswith("Requests/sec:"):
                rps = float(w[1])
            elif len(w) == 2 and w[0] == "50%":
                p50 = to_us(w[1])
            elif len(w) == 2 and w[0] == "99%":
                p99 = to_us(w[1])
            elif line.strip().startswith("Socket errors:"):
                # Socket errors: connect 0, read 0, write 0, timeout 0
                errors += sum(int(x.strip(",")) for x in w[3::2])
            elif line.strip().startswith("Non-2xx or 3xx responses:"):
                errors += int(w[-1])
    if rps is None or p50 is None or p99 is None:
        sys.exit("report.py: %s is not wrk --latency output" % path)
    print("%.2f %.1f %.1f %d" % (rps, p50, p99, errors))


def fmt_us(us):
    if us < 1000:
        return "%.0f µs" % us
    if us < 1e6:
        return "%.2f ms" % (us / 1e3)
    return "%.2f s" % (us / 1e6)


def table(results, md_path):
    runs = {}
    errors = {}
    with open(results) as f:
        for line in f:
            w = line.split()
            if len(w) != 7:
                continue
            key = (w[1], w[2])
            runs.setdefault(key, []).append(tuple(float(x) for x in w[3:6]))
            errors[key] = errors.get(key, 0) + int(w[6])
    med = {}
    for key, rows in runs.items():
        med[key] = [statistics.median(r[i] for r in rows) for i in range(3)]
        med[key].append(len(rows))

    head = ["scenario", "target", "req/s", "p50", "p99", "vs nginx", "vs direct"]
    rows = []
    for scen, label in SCENARIOS:
        for tgt in TARGETS:
            m = med.get((scen, tgt))
            if not m:
                continue
            ng = med.get((scen, "nginx"))
            di = med.get((scen, "direct"))
            rows.append([
                label, tgt, "%.0f" % m[0], fmt_us(m[1]), fmt_us(m[2]),
                "%.2f" % (m[0] / ng[0]) if ng and ng[0] else "-",
                "%.2f" % (m[0] / di[0]) if di and di[0] else "-",
            ])
    notes = []
    lat = {t: med.get(("lat1", t)) for t in TARGETS}
    if lat["direct"]:
        added = ", ".join("%s %+.0f µs" % (t, lat[t][1] - lat["direct"][1])
                          for t in TARGETS[1:] if lat[t])
        notes.append("p50 added to direct at 1 connection: " + added)
    for key in sorted(errors):
        if errors[key]:
            notes.append("%s via %s: %d socket errors or non-2xx answers over %d runs"
                         % (key[0], key[1], errors[key], med[key][3]))

    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    right = [False, False, True, True, True, True, True]

    def line(cells):
        return "  ".join(c.rjust(w) if r else c.ljust(w)
                         for c, w, r in zip(cells, widths, right)).rstrip()

    print(line(head))
    print(line(["-" * w for w in widths]))
    prev = None
    for r in rows:
        if prev is not None and r[0] != prev:
            print()
        print(line(r))
        prev = r[0]
    for n in notes:
        print(n)

    with open(md_path, "w") as f:
        f.write("| " + " | ".join(head) + " |\n")
        f.write("|" + "|".join("---:" if r else "---" for r in right) + "|\n")
        for r in rows:
            f.write("| " + " | ".join(r) + " |\n")
        f.write("\n")
        for n in notes:
            f.write("- " + n + "\n")


def syscalls(counts, md_path):
    per = {}
    cols = []
    for line in open(counts):
        w = line.split()
        if len(w) != 5 or int(w[4]) == 0:
            continue
        col = (w[0], w[1])
        if col not in cols:
            cols.append(col)
        per[(w[2], col)] = float(w[3]) / int(w[4])
    names = sorted({n for n, _ in per}, key=lambda n: (n != "all", -max(
        per.get((n, c), 0) for c in cols)))
    names = [n for n in names if max(per.get((n, c), 0) for c in cols) >= 0.005]
    label = dict(SCENARIOS)
    head = ["per request"] + ["%s %s" % (t, label[s].split(",")[0]) for s, t in cols]
    with open(md_path, "w") as f:
        f.write("\n| " + " | ".join(head) + " |\n")
        f.write("|---|" + "---:|" * len(cols) + "\n")
        for n in names:
            f.write("| %s | %s |\n" % (n, " | ".join(
                "%.2f" % per.get((n, c), 0) for c in cols)))
    print(open(md_path).read().strip())


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "parse":
        parse(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "syscalls":
        syscalls(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "table":
        table(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
