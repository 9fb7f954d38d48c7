"""Reading and writing graphs: OpenFst text format, symbol tables, and a torch file format.

Mapping to OpenFst (the same one `tests/graphs/oracle.py` uses):

- labels: our label `k` is OpenFst label `k + 1`, so our `EPSILON == -1` is
  OpenFst's epsilon `0` (`<eps> 0` in a symbol table) and our label 0 (e.g. the
  CTC blank) is OpenFst's 1;
- weights: our score `w` is the OpenFst cost `-w` (log or tropical semiring),
  so a cost of `Infinity` is a score of `-inf`;
- start: OpenFst has one start state, which `fstprint` prints first; several
  start nodes become one new start state with weight-0 epsilon arcs to each;
- final weights: an accept node is a final state of weight 0 (`One`); since we
  have no final weights, a non-zero final cost `c` becomes an epsilon arc of
  score `-c` to one new, shared accept node.

Every writer replaces its target atomically with `atomic_open` / `write_atomic` (temporary
file beside it, synced, then `os.replace`, then the folder synced), which other packages
may use for their own files.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets
from typing import IO, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from ._batch import common_dtype
from .graph import EPSILON, Graph, as_list

_EPS_SYMBOL = "<eps>"
_FORMAT = "graphs.io.save"
_VERSION = 1


@contextlib.contextmanager
def atomic_open(path, mode: str = "w") -> Iterator[IO]:
    """A new file ("w": UTF-8 text with "\\n" line ends, "wb": binary) that replaces `path` only
    if the `with` block succeeds, so a reader never sees a half-written file and an error
    leaves the old one. The data goes to a temporary file beside `path` (so the rename is
    atomic), is synced to disk and renamed over `path`; the folder is synced too, which
    makes the rename itself survive a crash."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb', got {mode!r}")
    directory, base = os.path.split(os.path.abspath(os.fspath(path)))
    temporary = os.path.join(directory, f".{base}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    text = {"encoding": "utf-8", "newline": "\n"} if mode == "w" else {}
    f = open(temporary, mode.replace("w", "x"), **text)
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    folder = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


_TEMPORARY = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$")


def remove_stale_temporaries(folder) -> list[str]:
    """Delete the temporary files `atomic_open` left in `folder` when its process was killed
    mid-write (their writer's pid is gone); returns their names. Temporaries of live
    processes are kept."""
    removed = []
    for name in sorted(os.listdir(folder)):
        match = _TEMPORARY.match(name)
        if match and not _process_alive(int(match.group(1))):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, name))
                removed.append(name)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def write_atomic(path, data: str | bytes) -> None:
    """Write a whole str (as UTF-8) or bytes to `path` with `atomic_open`."""
    with atomic_open(path, "w" if isinstance(data, str) else "wb") as f:
        f.write(data)


# --------------------------------------------------------------------------- symbol tables
class SymbolTable:
    """Symbol <-> label mapping, stored in OpenFst's text format (`symbol id` per line).

    OpenFst id `k` is our label `k - 1`; `<eps> 0` is EPSILON. `len` counts every
    entry, epsilon included, like OpenFst's `NumSymbols`; iterating gives the symbols
    in id order. A table read from text remembers each symbol's line (`line`).
    """

    def __init__(self, symbols: Iterable[str] | None = None):
        self._label: dict[str, int] = {}
        self._symbol: dict[int, str] = {}
        self._line: dict[str, int] = {}
        self._insert(_EPS_SYMBOL, EPSILON)
        for symbol in symbols or ():
            if symbol in self._label:
                raise ValueError(f"SymbolTable: symbol {symbol!r} is listed twice")
            self._insert(symbol, len(self._label) - 1)

    def _insert(self, symbol: str, label: int) -> None:
        if not isinstance(symbol, str) or symbol.split() != [symbol]:
            raise ValueError(f"SymbolTable: symbol {symbol!r} must be a non-empty string without whitespace")
        self._label[symbol] = label
        self._symbol[label] = symbol

    def add(self, symbol: str) -> int:
        """The label of `symbol`, adding it after the largest label if it is new."""
        if symbol not in self._label:
            self._insert(symbol, max(self._symbol, default=EPSILON) + 1)
        return self._label[symbol]

    def label(self, symbol: str) -> int:
        try:
            return self._label[symbol]
        except KeyError:
            raise KeyError(f"unknown symbol {symbol!r}") from None

    def symbol(self, label: int) -> str:
        try:
            return self._symbol[int(label)]
        except KeyError:
            raise KeyError(f"no symbol for label {int(label)}") from None

    def line(self, symbol: str) -> int | None:
        """The 1-based line of the text or file `symbol` was read from (None if it was added
        in code), so that a caller checking the table further can name the line."""
        self.label(symbol)
        return self._line.get(symbol)

    def labels(self, symbols: Sequence[str]) -> np.ndarray:
        """Labels of many symbols at once (int64); KeyError names an unknown symbol."""
        unique, inverse = np.unique(np.asarray(symbols, dtype=str), return_inverse=True)
        return np.array([self.label(s) for s in unique.tolist()], dtype=np.int64)[inverse.reshape(-1)]

    def symbols(self, labels: np.ndarray) -> np.ndarray:
        """Symbols of many labels at once (a string array); KeyError names a label without one."""
        unique, inverse = np.unique(np.asarray(labels, dtype=np.int64), return_inverse=True)
        return np.array([self.symbol(label) for label in unique.tolist()], dtype=str)[inverse.reshape(-1)]

    def __len__(self) -> int:
        return len(self._label)

    def __iter__(self) -> Iterator[str]:
        return iter([self._symbol[label] for label in sorted(self._symbol)])

    def __contains__(self, symbol) -> bool:
        return symbol in self._label

    def __eq__(self, other) -> bool:
        return isinstance(other, SymbolTable) and self._label == other._label

    def __repr__(self) -> str:
        return f"SymbolTable({len(self)} symbols)"

    def to_text(self) -> str:
        """OpenFst text: `symbol<TAB>id` lines in id order."""
        return "".join(f"{self._symbol[label]}\t{label + 1}\n" for label in sorted(self._symbol))

    @classmethod
    def from_text(cls, text: str, name: str = "<text>", *, dense: bool = False,
                  first: str | None = None) -> "SymbolTable":
        """Parse OpenFst text (lines end with "\\n"); errors name `name` (the file) and the line.

        `dense=True` also requires the ids to run 0, 1, 2, ... in line order, without gaps
        (as in a tokens.txt or words.txt, where a symbol's index is its id); `first` requires
        id 0 to be that symbol (e.g. "<eps>" or a CTC blank), and the text not to be empty.
        """
        table = cls()
        table._label.clear()
        table._symbol.clear()
        for number, line in enumerate(text.split("\n"), 1):
            fields = line.split()
            if not fields:
                continue
            where = f"{name}, line {number}"
            if len(fields) != 2:
                raise ValueError(f"{where}: expected 'symbol id', got {line.rstrip()!r}")
            symbol, key = fields
            try:
                label = int(key) - 1
            except ValueError:
                raise ValueError(f"{where}: id {key!r} is not an integer") from None
            if label < EPSILON:
                raise ValueError(f"{where}: id {key} is negative")
            if symbol in table._label:
                raise ValueError(f"{where}: symbol {symbol!r} already has id {table._label[symbol] + 1}")
            if label in table._symbol:
                raise ValueError(f"{where}: id {key} already belongs to {table._symbol[label]!r}")
            if dense and label + 1 != len(table):
                raise ValueError(f"{where}: expected id {len(table)}, got {key} (ids must be 0, 1, 2, ... "
                                 "without gaps)")
            if first is not None and label == EPSILON and symbol != first:
                raise ValueError(f"{where}: id 0 must be {first!r}, got {symbol!r}")
            table._insert(symbol, label)
            table._line[symbol] = number
        if first is not None and EPSILON not in table._symbol:
            raise ValueError(f"{name}: no id 0 (expected '{first} 0')")
        return table

    @classmethod
    def read(cls, path, *, dense: bool = False, first: str | None = None) -> "SymbolTable":
        """Read a file written by `write` or OpenFst (see `from_text` for `dense` and `first`)."""
        with open(path, encoding="utf-8") as f:
            return cls.from_text(f.read(), name=os.fspath(path), dense=dense, first=first)

    def write(self, path) -> None:
        write_atomic(path, self.to_text())


def as_symbol_table(table) -> SymbolTable | None:
    """The `isymbols`/`osymbols` argument of the writers and readers as a SymbolTable: None,
    a SymbolTable, or a path to read one from."""
    return table if table is None or isinstance(table, SymbolTable) else SymbolTable.read(table)


# --------------------------------------------------------------------------- OpenFst text
def _source_text(source) -> tuple[str, str]:
    """(name for messages, text) of a path or a text string (a str with a newline, or empty)."""
    if isinstance(source, str) and ("\n" in source or not source.strip()):
        return "<text>", source
    with open(source, encoding="utf-8") as f:
        return os.fspath(source), f.read()


_SPACE = np.zeros(256, dtype=bool)
_SPACE[list(b" \t\n\r\x0b\x0c")] = True  # the ASCII whitespace that bytes.split() splits on


def _tokenize(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Whitespace-separated tokens (a bytes array) and, for each non-blank line, its
    1-based number, the index of its first token and its number of tokens."""
    data = text.encode("utf-8")
    tokens = np.array(data.split(), dtype=bytes)
    byte = np.frombuffer(data, dtype=np.uint8)
    space = _SPACE[byte]
    first = ~space
    first[1:] &= space[:-1]
    line = np.searchsorted(np.flatnonzero(byte == ord("\n")), np.flatnonzero(first)) + 1
    begins = np.flatnonzero(np.diff(line, prepend=0))
    return tokens, line[begins], begins, np.diff(begins, append=line.size)


def _states(tokens: np.ndarray) -> np.ndarray:
    try:
        values = tokens.astype(np.int64)
    except (ValueError, OverflowError):
        raise ValueError("is not a non-negative integer") from None
    if (values < 0).any():
        raise ValueError("is negative")
    return values


def _costs(tokens: np.ndarray) -> np.ndarray:
    try:
        values = tokens.astype(np.float64)
    except ValueError:
        raise ValueError("is not a number") from None
    if np.isnan(values).any():
        raise ValueError("is NaN")
    return values


def _label_converter(table: SymbolTable | None) -> Callable[[np.ndarray], np.ndarray]:
    """Tokens -> our labels: OpenFst numbers shifted down by one, or symbols of `table`."""
    if table is None:
        return lambda tokens: _states(tokens) - 1
    return lambda tokens: table.labels(np.char.decode(tokens, "utf-8"))


def _convert(convert, tokens: np.ndarray, lines: np.ndarray, what: str, name: str) -> np.ndarray:
    """Convert a column of tokens in one call; on failure find the first bad token and
    raise a ValueError naming its line."""
    try:
        return convert(tokens)
    except (ValueError, KeyError):
        pass
    for i in range(tokens.size):
        try:
            convert(tokens[i : i + 1])
        except ValueError as error:
            reason = str(error)
        except KeyError:
            reason = "is not in the symbol table"
        else:
            continue
        raise ValueError(f"{name}, line {lines[i]}: {what} {tokens[i].decode('utf-8')!r} {reason}")
    raise AssertionError("unreachable: every token converted on its own")


def read_openfst(
    source,
    isymbols=None,
    osymbols=None,
    acceptor: bool | None = None,
    dtype: torch.dtype = torch.float32,
    device=None,
) -> Graph:
    """Read AT&T / `fstprint` text: arc lines `src dst ilabel olabel [cost]` (acceptor:
    `src dst label [cost]`), final lines `state [cost]`; the first line's state is the start.

    `source` is a path, or text (a str containing a newline; an empty str is an empty
    graph). Labels are numbers, or symbols of `isymbols`/`osymbols` (SymbolTables or
    paths); an acceptor uses `isymbols`. `acceptor=None` guesses: 3-field arcs, or
    4-field arcs whose 4th field is not a label, mean an acceptor. See the module
    docstring for labels, costs and final weights. Errors name the source and line.
    """
    name, text = _source_text(source)
    isymbols, osymbols = as_symbol_table(isymbols), as_symbol_table(osymbols)
    tokens, numbers, begins, widths = _tokenize(text)

    def column(rows: np.ndarray, k: int) -> np.ndarray:
        """Field k of the given lines, "0" (cost One) where a line has no field k."""
        present = widths[rows] > k
        return np.where(present, tokens[np.where(present, begins[rows] + k, 0)], b"0")

    if acceptor is None:
        acceptor = _guess_acceptor(column(np.flatnonzero(widths == 4), 3), widths, osymbols)
    allowed = (3, 4) if acceptor else (4, 5)
    bad = np.flatnonzero(~np.isin(widths, (1, 2) + allowed))
    if bad.size:
        kind = "an acceptor" if acceptor else "a transducer"
        raise ValueError(
            f"{name}, line {numbers[bad[0]]}: expected 1-2 fields (final) or {allowed[0]}-{allowed[1]} fields "
            f"(arc of {kind}), got {widths[bad[0]]}"
        )

    arcs, finals = np.flatnonzero(widths >= 3), np.flatnonzero(widths <= 2)
    arc_lines, final_lines = numbers[arcs], numbers[finals]
    src = _convert(_states, column(arcs, 0), arc_lines, "state", name)
    dst = _convert(_states, column(arcs, 1), arc_lines, "state", name)
    ilabel = _convert(_label_converter(isymbols), column(arcs, 2), arc_lines, "label", name)
    olabel = ilabel if acceptor else _convert(_label_converter(osymbols), column(arcs, 3), arc_lines, "label", name)
    arc_cost = _convert(_costs, column(arcs, allowed[1] - 1), arc_lines, "weight", name)
    final_state = _convert(_states, column(finals, 0), final_lines, "state", name)
    final_cost = _convert(_costs, column(finals, 1), final_lines, "weight", name)

    unique, first = np.unique(final_state, return_index=True)
    if unique.size < final_state.size:
        again = np.setdiff1d(np.arange(final_state.size), first)[0]
        raise ValueError(f"{name}, line {final_lines[again]}: state {final_state[again]} is final twice")

    num_nodes = int(max(src.max(initial=-1), dst.max(initial=-1), final_state.max(initial=-1))) + 1
    start = [] if not widths.size else [int(src[0] if widths[0] >= 3 else final_state[0])]
    accept = final_state[final_cost == 0]
    weighted = np.flatnonzero((final_cost != 0) & (final_cost != math.inf))
    if weighted.size:
        # No final weights here: a weighted final state gets an epsilon arc to a new accept node.
        src = np.concatenate([src, final_state[weighted]])
        dst = np.concatenate([dst, np.full(weighted.size, num_nodes)])
        eps = np.full(weighted.size, EPSILON)
        ilabel, olabel = np.concatenate([ilabel, eps]), np.concatenate([olabel, eps])
        arc_cost = np.concatenate([arc_cost, final_cost[weighted]])
        accept = np.append(accept, num_nodes)
        num_nodes += 1
    weight = torch.from_numpy(0.0 - arc_cost).to(device=device, dtype=dtype)
    return Graph.from_arrays(src, dst, ilabel, olabel, weight, start, accept, num_nodes, device=weight.device)


def _guess_acceptor(fourth: np.ndarray, widths: np.ndarray, osymbols) -> bool:
    """3-field arcs mean an acceptor, 5-field arcs a transducer; if every arc has 4 fields,
    it is an acceptor unless every 4th field reads as an output label."""
    if (widths == 3).any() or (widths == 5).any():
        return bool((widths == 3).any())
    try:
        _label_converter(osymbols)(fourth)
    except (ValueError, KeyError):
        return True
    return False


def format_each(values: np.ndarray, format: Callable = str) -> np.ndarray:
    """Each value formatted by `format`, as an object array of str, so that text columns are
    joined with + in one vectorized step (what the text writers build lines from)."""
    return np.array(list(map(format, values.tolist())), dtype=object)


def _cost_fields(cost: np.ndarray) -> np.ndarray:
    """`\\t<cost>` per entry in OpenFst spelling (shortest round-trip repr, `Infinity`), or ''
    where the cost is 0, as `fstprint` leaves weight One out."""
    text = np.full(cost.shape, "", dtype=object)
    nonzero = cost != 0
    text[nonzero] = "\t" + format_each(cost[nonzero], repr)
    text[cost == math.inf] = "\tInfinity"
    text[cost == -math.inf] = "\t-Infinity"
    return text


def _label_fields(labels: np.ndarray, table: SymbolTable | None) -> np.ndarray:
    return format_each(labels + 1) if table is None else table.symbols(labels).astype(object)


def write_openfst(graph: Graph, path=None, isymbols=None, osymbols=None, acceptor: bool | None = None) -> str:
    """The graph as `fstprint` text (returned, and written atomically to `path` if given).

    OpenFst needs one start state printed first, so states are renumbered: the start
    node becomes 0, or, with several start nodes, a new state 0 with weight-0 epsilon
    arcs to each. Other nodes keep their order. Accept nodes are final lines without
    a weight; a state with no arcs that must still be printed (a dead start state, or
    the last node, to keep the node count) gets a final line of cost `Infinity` (Zero).
    Weights print as costs (`-w`) with enough digits to round-trip. `acceptor=None`
    prints 3-field arcs when every ilabel equals its olabel. A graph with no start
    node prints nothing (OpenFst's empty FST).
    """
    isymbols, osymbols = as_symbol_table(isymbols), as_symbol_table(osymbols)
    s = graph.numpy()
    if acceptor is None:
        acceptor = bool(np.array_equal(s.ilabel, s.olabel))
    elif acceptor and not np.array_equal(s.ilabel, s.olabel):
        raise ValueError("write_openfst: acceptor=True but some arc's ilabel differs from its olabel")
    text = "" if s.start.size == 0 else _openfst_text(graph, isymbols, osymbols, acceptor)
    if path is not None:
        write_atomic(path, text)
    return text


def _openfst_text(graph: Graph, isymbols, osymbols, acceptor: bool) -> str:
    s = graph.numpy()
    src, dst, ilabel, olabel = s.src, s.dst, s.ilabel, s.olabel
    cost = 0.0 - graph.weight.detach().cpu().to(torch.float64).numpy()
    num_nodes = s.num_nodes
    if s.start.size == 1:
        start = int(s.start[0])
    else:
        start, num_nodes = num_nodes, num_nodes + 1
        eps = np.full(s.start.size, EPSILON)
        src, dst = np.append(src, np.full(s.start.size, start)), np.append(dst, s.start)
        ilabel, olabel = np.append(ilabel, eps), np.append(olabel, eps)
        cost = np.append(cost, np.zeros(s.start.size))
    nodes = np.arange(num_nodes)
    new_id = nodes + (nodes < start)
    new_id[start] = 0
    src, dst, accept = new_id[src], new_id[dst], new_id[s.accept]

    mentioned = np.zeros(num_nodes, dtype=bool)
    mentioned[src] = mentioned[accept] = True
    dead = [] if mentioned[0] else [0]
    mentioned[dst] = mentioned[0] = True
    if not mentioned[-1]:
        dead.append(num_nodes - 1)

    fields = [format_each(src), format_each(dst), _label_fields(ilabel, isymbols)]
    if not acceptor:
        fields.append(_label_fields(olabel, osymbols))
    lines = np.array(list(map("\t".join, zip(*(f.tolist() for f in fields)))), dtype=object) + _cost_fields(cost)
    final_state = np.concatenate([accept, dead]).astype(np.int64)
    final_lines = format_each(final_state) + np.repeat(["", "\tInfinity"], [accept.size, len(dead)]).astype(object)

    # fstprint order: state by state, its arcs then its final line.
    state = np.concatenate([src, final_state])
    kind = np.concatenate([np.zeros(src.size, dtype=np.int64), np.ones(final_state.size, dtype=np.int64)])
    lines = np.concatenate([lines, final_lines])[np.lexsort((kind, state))]
    return "\n".join(lines.tolist()) + "\n"


# --------------------------------------------------------------------------- torch files
def save(graphs: Graph | Sequence[Graph], path) -> None:
    """Save a graph or a list of graphs to one file (`torch.save` of a dict of tensors,
    arrays concatenated across graphs), atomically. Weights are saved detached."""
    items, single = as_list(graphs)
    counts = {
        "num_nodes": [g.num_nodes for g in items],
        "num_arcs": [g.num_arcs for g in items],
        "num_start": [g.start.numel() for g in items],
        "num_accept": [g.accept.numel() for g in items],
    }
    dtypes = [g.dtype for g in items]
    common = common_dtype(items)

    def cat(name: str, dtype=torch.long) -> torch.Tensor:
        return torch.cat([getattr(g, name).detach().cpu().to(dtype) for g in items] or [torch.empty(0, dtype=dtype)])

    payload = {
        "format": _FORMAT,
        "version": _VERSION,
        "single": single,
        "dtypes": [str(d).removeprefix("torch.") for d in dtypes],
        **{name: torch.tensor(values, dtype=torch.long) for name, values in counts.items()},
        **{name: cat(name) for name in ("src", "dst", "ilabel", "olabel", "start", "accept")},
        "weight": cat("weight", common),
    }
    with atomic_open(path, "wb") as f:
        torch.save(payload, f)


def load(path, device=None) -> Graph | list[Graph]:
    """Load what `save` wrote (a graph, or a list of graphs), validated, onto `device`."""
    name = os.fspath(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as error:
        raise ValueError(f"{name} is not a graph file written by graphs.save: {error}") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ValueError(f"{name} is not a graph file written by graphs.save")
    if payload.get("version") != _VERSION:
        raise ValueError(f"{name}: graph file version {payload.get('version')} is not supported (need {_VERSION})")
    try:
        graphs = _unpack(payload, device)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
        raise ValueError(f"{name} is a damaged graph file: {error}") from None
    return graphs[0] if payload["single"] else graphs


def _unpack(payload: dict, device) -> list[Graph]:
    """Split the concatenated arrays of a saved file back into graphs."""
    device = torch.device(device) if device is not None else torch.device("cpu")

    def split(name: str, counts: str) -> tuple[torch.Tensor, ...]:
        return torch.split(payload[name].to(device), payload[counts].tolist())

    arcs = {name: split(name, "num_arcs") for name in ("src", "dst", "ilabel", "olabel", "weight")}
    start, accept = split("start", "num_start"), split("accept", "num_accept")
    graphs = []
    for i, (num_nodes, dtype) in enumerate(zip(payload["num_nodes"].tolist(), payload["dtypes"], strict=True)):
        fields = [arcs[name][i] for name in ("src", "dst", "ilabel", "olabel")]
        weight = arcs["weight"][i].to(getattr(torch, dtype))
        graphs.append(Graph.from_arrays(*fields, weight, start[i], accept[i], num_nodes, device=device))
    return graphs
