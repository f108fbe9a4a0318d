# SPDX-License-Identifier: MIT
"""A strict parser of the Prometheus text exposition format (version 0.0.4).

Strict on purpose: it refuses what Prometheus tolerates but a careful
exporter should not emit, so tests catch sloppy output early.

    families = promparse.parse(text)              # raises ParseError
    promparse.value(families, "x_total", reason="bad_json")

Checked:
- every line ends in "\\n", including the last; no blank lines;
- "# HELP name text" and "# TYPE name type" at most once per family, both
  before the family's first sample (both required unless
  require_help_type=False); HELP escapes only \\\\ and \\n;
- TYPE is counter, gauge, histogram, summary or untyped;
- metric names [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*
  and not starting with "__"; no label twice in a sample;
- label values in double quotes with only \\\\, \\" and \\n escapes;
- values are Go floats (also NaN, +Inf, -Inf); optional int64 timestamps;
- a family's samples are contiguous and no series appears twice;
- counters are not negative; histogram buckets have "le" and a +Inf bucket,
  and _count equals the +Inf bucket.
"""

import math
import re
from dataclasses import dataclass, field

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_INT = re.compile(r"-?\d+\Z")
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


class ParseError(ValueError):
    def __init__(self, lineno, line, message):
        super().__init__(f"line {lineno}: {message}: {line!r}")
        self.lineno = lineno


@dataclass
class Sample:
    name: str
    labels: dict
    value: float
    timestamp: int = None


@dataclass
class Family:
    name: str
    type: str = None
    help: str = None
    samples: list = field(default_factory=list)


def _parse_float(s):
    if s in ("NaN", "+Inf", "-Inf", "Inf"):
        return float(s.replace("Inf", "inf").replace("NaN", "nan"))
    if not _FLOAT.match(s):
        raise ValueError(f"not a float: {s!r}")
    return float(s)


def _unescape_help(s):
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            if i + 1 >= len(s) or s[i + 1] not in "\\n":
                raise ValueError("bad escape in HELP")
            out.append("\\" if s[i + 1] == "\\" else "\n")
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _parse_labels(s, i):
    """Parse from s[i] == '{'; return (labels, index after '}')."""
    labels = {}
    i += 1
    while True:
        if i < len(s) and s[i] == "}":
            return labels, i + 1
        m = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*").match(s, i)
        if not m:
            raise ValueError("bad label name")
        name = m.group(0)
        if name.startswith("__"):
            raise ValueError(f"reserved label name {name!r}")
        if name in labels:
            raise ValueError(f"label {name!r} twice")
        i = m.end()
        if s[i:i + 2] != '="':
            raise ValueError("expected =\" after label name")
        i += 2
        value = []
        while True:
            if i >= len(s):
                raise ValueError("unterminated label value")
            c = s[i]
            if c == "\\":
                nxt = s[i + 1:i + 2]
                if nxt not in ("\\", '"', "n"):
                    raise ValueError("bad escape in label value")
                value.append("\n" if nxt == "n" else nxt)
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise ValueError("newline in label value")
            else:
                value.append(c)
                i += 1
        labels[name] = "".join(value)
        if i < len(s) and s[i] == ",":
            i += 1
        elif i < len(s) and s[i] == "}":
            pass
        else:
            raise ValueError("expected , or } after label value")


def _family_of(sample_name, families):
    """The declared family a sample name belongs to (histogram/summary suffixes)."""
    if sample_name in families:
        return sample_name
    for fam_type, suffixes in _SUFFIXES.items():
        for suffix in suffixes:
            if sample_name.endswith(suffix):
                base = sample_name[:-len(suffix)]
                if base in families and families[base].type == fam_type:
                    return base
    return sample_name


def parse(text, require_help_type=True):
    """Parse exposition text into {family name: Family}; raise ParseError."""
    if not text.endswith("\n"):
        raise ParseError(0, text[-40:], "output does not end in a newline")
    families = {}
    seen_series = set()
    finished = set()   # families whose samples are over (must stay contiguous)
    current = None
    lines = text[:-1].split("\n")
    for lineno, line in enumerate(lines, 1):
        if line == "":
            raise ParseError(lineno, line, "blank line")
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[0] == "#" and parts[1] in ("HELP", "TYPE"):
                kind, name = parts[1], parts[2]
                rest = parts[3] if len(parts) == 4 else ""
                if not METRIC_NAME.match(name):
                    raise ParseError(lineno, line, "bad metric name")
                fam = families.setdefault(name, Family(name))
                if fam.samples:
                    raise ParseError(lineno, line, f"{kind} after the family's samples")
                if kind == "HELP":
                    if fam.help is not None:
                        raise ParseError(lineno, line, "second HELP")
                    try:
                        fam.help = _unescape_help(rest)
                    except ValueError as e:
                        raise ParseError(lineno, line, str(e)) from None
                else:
                    if fam.type is not None:
                        raise ParseError(lineno, line, "second TYPE")
                    if rest not in TYPES:
                        raise ParseError(lineno, line, "unknown TYPE")
                    fam.type = rest
                if current is not None and current != name:
                    finished.add(current)
                current = name
            # Any other comment is allowed and ignored.
            continue

        m = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*").match(line)
        if not m:
            raise ParseError(lineno, line, "bad metric name")
        name = m.group(0)
        i = m.end()
        labels = {}
        try:
            if i < len(line) and line[i] == "{":
                labels, i = _parse_labels(line, i)
            if i >= len(line) or line[i] != " ":
                raise ValueError("expected a space before the value")
            fields = line[i + 1:].split(" ")
            if len(fields) not in (1, 2) or "" in fields:
                raise ValueError("expected value [timestamp]")
            value = _parse_float(fields[0])
            timestamp = None
            if len(fields) == 2:
                if not _INT.match(fields[1]):
                    raise ValueError("timestamp is not an integer")
                timestamp = int(fields[1])
        except ValueError as e:
            raise ParseError(lineno, line, str(e)) from None

        fam_name = _family_of(name, families)
        fam = families.get(fam_name)
        if fam is None:
            if require_help_type:
                raise ParseError(lineno, line, "sample without HELP and TYPE")
            fam = families[fam_name] = Family(fam_name, type="untyped")
        if require_help_type and (fam.help is None or fam.type is None):
            raise ParseError(lineno, line, "sample before its family's HELP and TYPE")
        if fam_name in finished:
            raise ParseError(lineno, line, "family's samples are not contiguous")
        if current is not None and current != fam_name:
            finished.add(current)
        current = fam_name
        key = (name, tuple(sorted(labels.items())))
        if key in seen_series:
            raise ParseError(lineno, line, "series appears twice")
        seen_series.add(key)
        if fam.type == "counter" and (value < 0 or math.isnan(value)):
            raise ParseError(lineno, line, "negative counter")
        if fam.type == "histogram" and name.endswith("_bucket") and "le" not in labels:
            raise ParseError(lineno, line, "bucket without le")
        fam.samples.append(Sample(name, labels, value, timestamp))

    for fam in families.values():
        if fam.type == "histogram" and fam.samples:
            _check_histogram(fam)
    return families


def _check_histogram(fam):
    groups = {}
    for s in fam.samples:
        rest = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        groups.setdefault(rest, {})[s.name, s.labels.get("le")] = s.value
    for rest, g in groups.items():
        inf = g.get((fam.name + "_bucket", "+Inf"))
        if inf is None:
            raise ParseError(0, fam.name, "histogram without a +Inf bucket")
        count = g.get((fam.name + "_count", None))
        if count is not None and count != inf:
            raise ParseError(0, fam.name, "histogram _count differs from the +Inf bucket")


def value(families, name, **labels):
    """The value of the one sample called name with exactly these labels."""
    fam = families.get(_family_of(name, families))
    if fam is None:
        raise KeyError(name)
    for s in fam.samples:
        if s.name == name and s.labels == labels:
            return s.value
    raise KeyError(f"{name}{labels}")


def samples(families, name):
    """Every sample called name, as (labels, value)."""
    fam = families.get(_family_of(name, families))
    return [(s.labels, s.value) for s in (fam.samples if fam else []) if s.name == name]
