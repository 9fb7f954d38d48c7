"""graphs.io: OpenFst text (checked against pywrapfst), symbol tables, save/load."""

import math
import os
import re
import stat
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graphs import EPSILON, Graph
from graphs.compare import equal, isomorphic
from graphs.io import (
    SymbolTable,
    atomic_open,
    load,
    read_openfst,
    remove_stale_temporaries,
    save,
    write_atomic,
    write_openfst,
)

from .test_compare import FINITE_WEIGHTS, random_graphs

NEG_INF = float("-inf")
SEMIRINGS = {"log": "log64", "tropical": "standard"}  # our semiring name -> OpenFst arc type, as in the oracle


@pytest.fixture(scope="module")
def oracle():
    pytest.importorskip("pywrapfst")
    from . import oracle

    return oracle


def openfst_score(f, oracle) -> float:
    """Shortest distance from the start state of an OpenFst FST, as our score (like
    `oracle.total_score`, for FSTs that OpenFst compiled or built)."""
    distances = oracle.fst.shortestdistance(f, reverse=True, delta=1e-9)
    if not 0 <= f.start() < len(distances):
        return NEG_INF
    return oracle.weight_value(distances[f.start()])


def assert_scores_close(a: float, b: float, tol: float = 1e-5) -> None:
    assert (a == b == NEG_INF) or math.isclose(a, b, rel_tol=tol, abs_tol=tol), (a, b)


# --------------------------------------------------------------------------- round trips
@settings(max_examples=80, deadline=None)
@given(random_graphs(weights=st.one_of(FINITE_WEIGHTS, st.just(NEG_INF)), min_starts=1, max_starts=1))
def test_round_trip_single_start(graph):
    text = write_openfst(graph)
    back = read_openfst(text, dtype=graph.dtype)
    assert back.dtype == graph.dtype
    assert isomorphic(graph, back, atol=0.0)
    if graph.start.tolist() == [0]:
        assert equal(graph, back, atol=0.0)
    assert write_openfst(back) == text  # printing what we read is a fixed point


@settings(max_examples=40, deadline=None)
@given(random_graphs(min_starts=2))
def test_several_starts_become_one_epsilon_start(graph):
    text = write_openfst(graph)
    back = read_openfst(text, dtype=graph.dtype)
    assert back.start.tolist() == [0] and back.num_nodes == graph.num_nodes + 1
    from_start = back.src == 0
    assert sorted(back.dst[from_start].tolist()) == sorted((graph.start + 1).tolist())
    assert (back.ilabel[from_start] == EPSILON).all() and (back.weight[from_start] == 0).all()
    assert write_openfst(back) == text


def test_float_weights_round_trip_exactly():
    weights = torch.tensor([0.1, -1 / 3, 1e-300, 12345.678901234567, NEG_INF], dtype=torch.float64)
    g = Graph.from_arrays([0] * 5, [1] * 5, [0, 1, 2, 3, 4], None, weights, [0], [1], 2)
    assert torch.equal(read_openfst(write_openfst(g), dtype=torch.float64).weight, weights)
    g32 = g.to(dtype=torch.float32)
    assert torch.equal(read_openfst(write_openfst(g32)).weight, g32.weight)


def test_write_format_details():
    g = Graph.from_arrays([2, 2, 0], [0, 2, 1], [0, EPSILON, 1], [0, EPSILON, 2], [0.0, -0.5, 2.0], [2], [0], 3)
    # node 2 -> state 0 (printed first), nodes 0, 1 -> states 1, 2; weight 0 printed as nothing.
    assert write_openfst(g) == "0\t1\t1\t1\n0\t0\t0\t0\t0.5\n1\t2\t2\t3\t-2.0\n1\n"
    acceptor = Graph.from_arrays([0], [1], [0], None, [1.5], [0], [1], 2)
    assert write_openfst(acceptor) == "0\t1\t1\t-1.5\n1\n"
    assert write_openfst(acceptor, acceptor=False) == "0\t1\t1\t1\t-1.5\n1\n"
    with pytest.raises(ValueError, match="acceptor=True"):
        write_openfst(g, acceptor=True)


def test_dead_start_and_isolated_last_node_are_kept():
    g = Graph.from_arrays([1], [2], [0], None, None, [0], [2], 4)
    text = write_openfst(g)
    assert text.splitlines()[0] == "0\tInfinity" and text.splitlines()[-1] == "3\tInfinity"
    assert equal(read_openfst(text), g)


def test_graph_without_start_is_the_empty_fst(tmp_path):
    g = Graph.from_arrays([0], [1], [0], None, None, [], [1], 2)
    path = tmp_path / "empty.txt"
    assert write_openfst(g, path) == ""
    assert path.read_text() == ""
    empty = read_openfst("")
    assert (empty.num_nodes, empty.num_arcs, empty.start.numel()) == (0, 0, 0)


def test_write_to_path_is_atomic_and_readable(tmp_path):
    g = Graph.from_arrays([0, 1], [1, 2], [0, 1], [2, EPSILON], [0.25, -1.0], [0], [2], 3)
    path = tmp_path / "g.fst.txt"
    path.write_text("old contents\n")
    text = write_openfst(g, path)
    assert path.read_text() == text
    assert os.listdir(tmp_path) == ["g.fst.txt"]  # no temporary file left behind
    assert equal(read_openfst(path), g) and equal(read_openfst(str(path)), g)


def test_write_atomic_replaces_the_file_and_syncs_it_and_its_folder(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    path = tmp_path / "out.txt"
    path.write_text("old\n")
    write_atomic(path, "ünïcode\nlines\n")
    assert path.read_bytes() == "ünïcode\nlines\n".encode("utf-8") and synced == ["file", "folder"]
    write_atomic(str(path), b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert os.listdir(tmp_path) == ["out.txt"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()  # a normal file, not mkstemp's 0600


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_open_keeps_the_old_file_when_the_block_fails(tmp_path):
    path = tmp_path / "table.txt"
    path.write_text("old\n")
    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic_open(path) as f:
            f.write("half of the new")
            raise RuntimeError("interrupted")
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["table.txt"]
    with atomic_open(tmp_path / "new.bin", "wb") as f:
        f.write(b"data")
    assert (tmp_path / "new.bin").read_bytes() == b"data"
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb'"):
        with atomic_open(path, "a"):
            pass
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "missing" / "x.txt", "x")


def test_temporaries_of_a_killed_writer_are_removed_and_live_ones_kept(tmp_path):
    killed_mid_write = ("import os, signal, sys; from graphs.io import atomic_open\n"
                        "with atomic_open(sys.argv[1]) as f:\n"
                        "    f.write('half'); f.flush(); os.kill(os.getpid(), signal.SIGKILL)")
    subprocess.run([sys.executable, "-c", killed_mid_write, str(tmp_path / "a.srt")])
    (leftover,) = os.listdir(tmp_path)
    assert leftover.startswith(".a.srt.") and leftover.endswith(".tmp")
    (tmp_path / "keep.tmp").write_text("not ours")
    with atomic_open(tmp_path / "b.srt") as f:
        (live,) = [name for name in os.listdir(tmp_path) if name.startswith(".b.srt.")]
        assert remove_stale_temporaries(tmp_path) == [leftover]
        assert sorted(os.listdir(tmp_path)) == sorted([live, "keep.tmp"])
        f.write("whole")
    assert sorted(os.listdir(tmp_path)) == ["b.srt", "keep.tmp"]


# --------------------------------------------------------------------------- reading
def test_final_weights_become_epsilon_arcs_to_a_new_accept_node():
    g = read_openfst("0 1 1 1 0.5\n1 2.0\n0 3 2 2\n3 -1.5\n2\n4 Infinity\n")
    # states 0..4, plus node 5 for the weighted finals of states 1 and 3.
    assert g.num_nodes == 6 and g.start.tolist() == [0] and g.accept.tolist() == [2, 5]
    assert sorted(g.arcs()) == [(0, 1, 0, 0, -0.5), (0, 3, 1, 1, 0.0), (1, 5, -1, -1, -2.0), (3, 5, -1, -1, 1.5)]


def test_only_a_final_line():
    g = read_openfst("3\n")
    assert (g.num_nodes, g.num_arcs, g.start.tolist(), g.accept.tolist()) == (4, 0, [3], [3])


def test_acceptor_detection():
    three = read_openfst("0 1 5\n1\n")
    four = read_openfst("0 1 5 0.5\n1\n")  # the 4th field is no label: an acceptor with a weight
    transducer = read_openfst("0 1 5 6\n1\n")
    assert three.arcs() == [(0, 1, 4, 4, 0.0)] and four.arcs() == [(0, 1, 4, 4, -0.5)]
    assert transducer.arcs() == [(0, 1, 4, 5, 0.0)]
    assert read_openfst("0 1 5 6\n1\n", acceptor=True).arcs() == [(0, 1, 4, 4, -6.0)]


def test_line_endings_blank_lines_and_unicode_symbols():
    expected = read_openfst("0 1 1 2 0.5\n1\n")
    assert equal(read_openfst("\n  \n0\t1 1  2\t0.5\r\n\t\n1\r\n"), expected)
    table = SymbolTable(["é", "日本"])
    g = Graph.from_arrays([0], [1], [1], [0], None, [0], [1], 2)
    text = write_openfst(g, isymbols=table, osymbols=table)
    assert text == "0\t1\t日本\té\n1\n"
    assert equal(read_openfst(text, isymbols=table, osymbols=table), g)
    with pytest.raises(ValueError, match="line 3: label 'ü' is not in the symbol table"):
        read_openfst("0 1 é é\n\n1 2 ü é\n", isymbols=table, osymbols=table)


MALFORMED = [
    ("0 1 2 3 0.5\n\n0 1 x 3\n", 3, "label 'x'"),
    ("0 1 2 3 4 5\n", 1, "got 6"),
    ("0 1 2 3\n0.5 1 2 3\n", 2, "state '0.5'"),
    ("0 1 2 3 nan\n", 1, "NaN"),
    ("0 1 -1 2\n", 1, "negative"),
    ("0 1 2 3 1\n1 abc\n", 2, "'abc' is not a number"),
    ("0 1 2\n0 1 2 3 4\n", 2, "got 5"),
    ("1\n1\n", 2, "final twice"),
    ("0 1 2 3 1\n-1 0\n", 2, "negative"),
]


@pytest.mark.parametrize("text, line, message", MALFORMED)
def test_malformed_text_names_the_line(text, line, message):
    with pytest.raises(ValueError, match=f"<text>, line {line}: .*{message}"):
        read_openfst(text)


def test_malformed_file_names_the_file(tmp_path):
    path = tmp_path / "bad.fst.txt"
    path.write_text("0 1 a 1\n1\n")
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}, line 1: label 'a'"):
        read_openfst(path)


def test_unknown_symbol_names_the_line():
    table = SymbolTable(["a", "b"])
    with pytest.raises(ValueError, match="line 2: label 'c' is not in the symbol table"):
        read_openfst("0 1 a b\n1 2 c a\n2\n", isymbols=table, osymbols=table)


# --------------------------------------------------------------------------- real OpenFst
@pytest.mark.parametrize("semiring", ["log", "tropical"])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_openfst_compiles_our_text(oracle, semiring, data):
    # Log sums over cycles may diverge, so log graphs are acyclic; tropical ones use
    # non-positive scores (non-negative costs), so cycles never help.
    weights = st.floats(-8.0, 8.0) if semiring == "log" else st.floats(-8.0, 0.0)
    graph = data.draw(random_graphs(acyclic=semiring == "log", weights=st.one_of(weights, st.just(NEG_INF))))
    compiler = oracle.fst.Compiler(arc_type=SEMIRINGS[semiring], acceptor=graph.is_acceptor())
    compiler.write(write_openfst(graph))
    compiled = compiler.compile()
    assert_scores_close(openfst_score(compiled, oracle), oracle.total_score(graph, semiring))


@st.composite
def openfst_machines(draw, fst, semiring: str):
    """Random OpenFst FSTs (acyclic for the log semiring) with weighted and unweighted
    final states; costs are multiples of 1/4, which `print` writes exactly."""
    n = draw(st.integers(2, 6))
    f = fst.VectorFst(SEMIRINGS[semiring])
    f.add_states(n)
    acyclic = semiring == "log"
    start = 0 if acyclic else draw(st.integers(0, n - 1))
    f.set_start(start)
    cost = st.integers(0, 16).map(lambda k: fst.Weight(f.weight_type(), k / 4))
    for i in range(draw(st.integers(1, 10))):
        src = start if i == 0 else draw(st.integers(0, n - 2 if acyclic else n - 1))
        dst = draw(st.integers(src + 1, n - 1)) if acyclic else draw(st.integers(0, n - 1))
        ilabel, olabel = draw(st.integers(0, 4)), draw(st.integers(0, 4))
        f.add_arc(src, fst.Arc(ilabel, olabel, draw(cost), dst))
    for state in draw(st.sets(st.integers(0, n - 1), max_size=3)):
        f.set_final(state, draw(st.one_of(st.just(fst.Weight.one(f.weight_type())), cost)))
    return f


@pytest.mark.parametrize("semiring", ["log", "tropical"])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_read_what_openfst_prints(oracle, semiring, data):
    f = data.draw(openfst_machines(oracle.fst, semiring))
    graph = read_openfst(f.print(), dtype=torch.float64)
    assert graph.start.tolist() == [f.start()]
    assert_scores_close(oracle.total_score(graph, semiring), openfst_score(f, oracle))


# --------------------------------------------------------------------------- symbol tables
def test_symbol_table_api():
    table = SymbolTable(["a", "b"])
    assert (table.label("a"), table.label("b"), table.label("<eps>")) == (0, 1, EPSILON)
    assert (table.symbol(EPSILON), table.symbol(1)) == ("<eps>", "b")
    assert len(table) == 3 and "a" in table and "z" not in table
    assert table.add("c") == 2 and table.add("a") == 0 and len(table) == 4
    assert table.labels(["c", "a", "c"]).tolist() == [2, 0, 2]
    assert table.symbols([1, EPSILON]).tolist() == ["b", "<eps>"]
    assert table.to_text() == "<eps>\t0\na\t1\nb\t2\nc\t3\n"
    with pytest.raises(KeyError, match="unknown symbol 'z'"):
        table.label("z")
    with pytest.raises(KeyError, match="no symbol for label 7"):
        table.symbol(7)
    with pytest.raises(ValueError, match="twice"):
        SymbolTable(["a", "a"])
    with pytest.raises(ValueError, match="whitespace"):
        table.add("a b")


def test_symbol_table_file_round_trip(tmp_path):
    table = SymbolTable(["<blk>", "a", "b"])
    table.add("zz")
    path = tmp_path / "words.txt"
    table.write(path)
    assert SymbolTable.read(path) == table
    assert SymbolTable.from_text(table.to_text()) == table
    sparse = SymbolTable.from_text("<eps> 0\nx 5\ny 2\n")
    assert (sparse.label("x"), sparse.add("w")) == (4, 5)


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("<eps> 0\na 1\nb\n", 3, "expected 'symbol id'"),
        ("<eps> 0\na 1\na 2\n", 3, "symbol 'a' already has id 1"),
        ("<eps> 0\na 1\n\nb 1\n", 4, "id 1 already belongs to 'a'"),
        ("a x\n", 1, "not an integer"),
        ("a -3\n", 1, "negative"),
    ],
)
def test_symbol_table_errors_name_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "syms.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}, line {line}: .*{message}"):
        SymbolTable.read(path)


def test_symbol_table_remembers_lines_and_iterates_in_id_order(tmp_path):
    path = tmp_path / "syms.txt"
    path.write_text("b 2\n\n<eps> 0\f\u2028\nc 1\n")  # whitespace such as \\f or U+2028 ends no line
    table = SymbolTable.read(path)
    assert list(table) == ["<eps>", "c", "b"]
    assert [table.line(symbol) for symbol in table] == [3, 4, 1]
    assert table.add("new") == 2 and table.line("new") is None
    with pytest.raises(KeyError, match="unknown symbol"):
        table.line("missing")


def test_dense_symbol_tables_with_a_given_first_symbol(tmp_path):
    path = tmp_path / "tokens.txt"
    path.write_text("<blk> 0\na 1\n\nb 2\n")
    table = SymbolTable.read(path, dense=True, first="<blk>")
    assert list(table) == ["<blk>", "a", "b"] and [table.line(s) for s in table] == [1, 2, 4]
    assert table.label("<blk>") == EPSILON  # OpenFst id 0
    assert list(SymbolTable.from_text("<eps> 0\nx 5\n")) == ["<eps>", "x"]  # gaps are fine unless dense


@pytest.mark.parametrize(
    "text, where, message, options",
    [
        ("<blk> 0\na 1\nb 3\n", ", line 3", "expected id 2, got 3 (ids must be 0, 1, 2, ... without gaps)",
         {"dense": True}),
        ("a 1\n<eps> 0\n", ", line 1", "expected id 0, got 1", {"dense": True}),
        ("<blk> 0\na 1\n\nb 1\n", ", line 4", "id 1 already belongs to 'a'", {"dense": True}),
        ("<eps> 0\na 1\n", ", line 1", "id 0 must be '<blk>', got '<eps>'", {"first": "<blk>"}),
        ("a 1\n<eps> 0\n", ", line 2", "id 0 must be '<blk>', got '<eps>'", {"first": "<blk>"}),
        ("a 1\n", "", "no id 0 (expected '<blk> 0')", {"first": "<blk>"}),
        ("\n", "", "no id 0 (expected '<blk> 0')", {"dense": True, "first": "<blk>"}),
    ],
)
def test_dense_and_first_errors_name_file_and_line(tmp_path, text, where, message, options):
    path = tmp_path / "tokens.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"^{re.escape(str(path) + where)}: {re.escape(message)}"):
        SymbolTable.read(path, **options)


def test_symbol_tables_interoperate_with_openfst(oracle, tmp_path):
    fst = oracle.fst
    ours = SymbolTable(["a", "b", "c"])
    ours.write(tmp_path / "ours.txt")
    theirs = fst.SymbolTable.read_text(str(tmp_path / "ours.txt"))
    assert [theirs.find(s) for s in ("<eps>", "a", "c")] == [0, 1, 3]
    theirs.add_symbol("d")
    theirs.write_text(str(tmp_path / "theirs.txt"))
    assert SymbolTable.read(tmp_path / "theirs.txt").label("d") == 3


def test_write_and_read_with_symbols():
    isymbols, osymbols = SymbolTable(["a", "b"]), SymbolTable(["x", "y", "z"])
    g = Graph.from_arrays([0, 1], [1, 2], [0, EPSILON], [2, 1], [0.5, 0.0], [0], [2], 3)
    text = write_openfst(g, isymbols=isymbols, osymbols=osymbols)
    assert text == "0\t1\ta\tz\t-0.5\n1\t2\t<eps>\ty\n2\n"
    assert equal(read_openfst(text, isymbols=isymbols, osymbols=osymbols), g)
    with pytest.raises(KeyError, match="no symbol for label 1"):
        write_openfst(g, isymbols=isymbols, osymbols=SymbolTable(["x"]))


@settings(max_examples=30, deadline=None)
@given(random_graphs(weights=st.floats(-8.0, 0.0), min_starts=1, max_starts=1, dtypes=(torch.float64,)))
def test_symbol_text_compiles_and_prints_with_openfst(oracle, tmp_path_factory, graph):
    fst = oracle.fst
    isymbols, osymbols = SymbolTable(["a", "b", "c", "d"]), SymbolTable(["w", "x", "y", "z"])
    text = write_openfst(graph, isymbols=isymbols, osymbols=osymbols)
    assert isomorphic(graph, read_openfst(text, isymbols=isymbols, osymbols=osymbols, dtype=torch.float64), atol=0.0)

    folder = tmp_path_factory.mktemp("symbols")
    isymbols.write(folder / "in.txt")
    osymbols.write(folder / "out.txt")
    tables = {"isymbols": fst.SymbolTable.read_text(str(folder / "in.txt")),
              "osymbols": fst.SymbolTable.read_text(str(folder / "out.txt"))}
    compiler = fst.Compiler(arc_type="standard", acceptor=graph.is_acceptor(), **tables)
    compiler.write(text)
    compiled = compiler.compile()
    expected = oracle.total_score(graph, "tropical")
    assert_scores_close(openfst_score(compiled, oracle), expected)
    # OpenFst renumbers states and prints weights with 6 significant digits.
    printed = compiled.print(acceptor=graph.is_acceptor(), **tables)
    reread = read_openfst(printed, isymbols=isymbols, osymbols=osymbols, acceptor=graph.is_acceptor())
    assert_scores_close(oracle.total_score(reread, "tropical"), expected, tol=1e-4)


# --------------------------------------------------------------------------- save / load
def test_save_load_round_trip(tmp_path):
    weight = torch.tensor([0.5, -1.25], dtype=torch.float64, requires_grad=True)
    g64 = Graph.from_arrays([0, 1], [1, 2], [0, EPSILON], [3, 1], weight, [0, 1], [2], 3)
    g32 = Graph.from_arrays([0], [0], [2], None, [1e-3], [0], [0], 1)
    empty = Graph(dtype=torch.float16)
    path = tmp_path / "graphs.pt"
    save([g64, g32, empty], path)
    loaded = load(path)
    assert isinstance(loaded, list) and len(loaded) == 3
    for before, after in zip([g64, g32, empty], loaded):
        assert after.dtype == before.dtype and equal(before, after, atol=0.0)
        assert not after.weight.requires_grad
    save(g64, str(path))
    single = load(path, device="cpu")
    assert isinstance(single, Graph) and equal(single, g64, atol=0.0)
    save([], path)
    assert load(path) == []
    assert os.listdir(tmp_path) == ["graphs.pt"]


@settings(max_examples=30, deadline=None)
@given(st.lists(random_graphs(), max_size=4))
def test_save_load_random_lists(tmp_path_factory, graphs):
    path = tmp_path_factory.mktemp("save") / "g.pt"
    save(graphs, path)
    loaded = load(path)
    assert len(loaded) == len(graphs)
    assert all(a.dtype == b.dtype and equal(a, b, atol=0.0) for a, b in zip(graphs, loaded))


def test_load_rejects_files_that_are_not_graphs(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with pytest.raises(ValueError, match=f"{re.escape(str(text))} is not a graph file"):
        load(text)
    other = tmp_path / "model.pt"
    torch.save({"weight": torch.zeros(3)}, other)
    with pytest.raises(ValueError, match=f"{re.escape(str(other))} is not a graph file"):
        load(other)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.pt")


def test_load_rejects_damaged_graph_files(tmp_path):
    path = tmp_path / "g.pt"
    save(Graph.from_arrays([0], [1], [0], None, None, [0], [1], 2), path)
    payload = torch.load(path, weights_only=True)
    payload["dst"] = torch.tensor([7])
    torch.save(payload, path)
    with pytest.raises(ValueError, match=f"{re.escape(str(path))} is a damaged graph file: .*node 7"):
        load(path)
