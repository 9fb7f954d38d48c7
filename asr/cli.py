"""The `asr` command line. Each subcommand lives in a function `_cmd_<name>`, registered in `_parser`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import signal
import sys
import time
import warnings
from contextlib import ExitStack
from pathlib import Path

from . import scoring


def _cmd_score(args) -> int:
    references = scoring.read_transcripts(args.ref)
    hypotheses = scoring.read_kaldi_text(args.hyp)
    result = scoring.score(references, hypotheses)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    if args.details:
        for utterance, (ref, hyp) in result.alignments.items():
            widths = [max(len(a), len(b)) for a, b in zip(ref, hyp)]
            print(f"{utterance}\n  REF: {' '.join(a.ljust(w) for a, w in zip(ref, widths))}"
                  f"\n  HYP: {' '.join(b.ljust(w) for b, w in zip(hyp, widths))}")
    print(result.words.kaldi_line("WER"))
    print(result.chars.kaldi_line("CER"))
    print(result.words.table("Wrd"))
    return 0


def _recognizer(args):
    """The `Recognizer` that `asr transcribe`'s options describe (module level: --jobs workers
    make theirs with it)."""
    from .decoding.context import read_hotwords
    from .longform import ChunkOptions, SegmentOptions
    from .model_dir import load_model_dir
    from .transcribe import Recognizer

    saved = load_model_dir(args.model)
    decoder = saved.decoder(_graph_from_flags(args, saved.tokens, saved.graph.topology), beam_options(args, saved.decoding),
                            args.prefix_beam, args.greedy, hotwords=read_hotwords(args.hotwords) if args.hotwords else (),
                            hotword_score=args.hotword_score)
    return Recognizer(saved, decoder, args.device, ChunkOptions(args.chunk_seconds, args.context_seconds),
                      SegmentOptions(args.pause_seconds, args.max_segment_seconds, args.vad))


def _cmd_transcribe(args) -> int:
    from functools import partial

    from .transcribe import find_inputs
    from .workers import transcribe_in_workers

    formats = _formats(args)
    context = _join_ranks(args)
    if args.jobs > 1:
        def run(inputs):
            return transcribe_in_workers(partial(_recognizer, args), inputs, args.jobs, args.batch_size)
    else:
        recognizer = _recognizer(args)
        run = _across_ranks(lambda chosen: recognizer.transcribe(chosen, batch_size=args.batch_size), args, context)
    return _leave_ranks(context, _write_results(args, "transcribe", list(find_inputs(args.audio)), run, formats))


def _cmd_align(args) -> int:
    from .data import read_manifest
    from .model_dir import load_model_dir
    from .transcribe import Recognizer, find_inputs

    formats = _formats(args)
    context = _join_ranks(args)
    inputs = list(find_inputs(args.audio))
    texts = {}
    for name in args.audio:
        if name.endswith(".jsonl"):
            texts.update({u.id: u.text.split() for u in read_manifest(name)})
    if args.text:
        texts.update({u: text.split() for u, text in scoring.read_kaldi_text(args.text).items()})
    if args.transcript is not None:
        if len(inputs) != 1:
            raise ValueError(f"--transcript is for one audio file; {len(inputs)} were given (use --text)")
        texts[inputs[0][0]] = args.transcript.split()
    recognizer = Recognizer(load_model_dir(args.model), device=args.device)
    run = _across_ranks(lambda chosen: recognizer.align(chosen, texts, batch_size=args.batch_size, plot_dir=args.plot),
                        args, context)
    return _leave_ranks(context, _write_results(args, "align", inputs, run, formats))


def _join_ranks(args):
    """Under torchrun: joins the process group and moves `--device cuda` to this rank's GPU.
    Returns this process's `DistributedContext` (a single process without torchrun)."""
    from .train import init_distributed, rank_device

    context = init_distributed()
    if context.world_size > 1:
        if getattr(args, "jobs", 1) > 1:
            raise ValueError("--jobs starts worker processes on one machine; under torchrun every rank is a worker "
                             "already: leave --jobs out")
        args.device = rank_device(args.device, context)
    return context


def _across_ranks(decode, args, context):
    """`decode` itself in a single process; under torchrun, the inputs shared out over the ranks
    in runs of 4 batches and the transcripts gathered on rank 0 in input order."""
    from functools import partial

    from .workers import transcribe_across_ranks

    if context.world_size == 1:
        return decode
    return partial(transcribe_across_ranks, decode, files_per_run=4 * args.batch_size)


def _leave_ranks(context, status: int) -> int:
    """`status`, after every torchrun rank has left the process group together."""
    from .train import leave_together

    if context.world_size > 1:
        leave_together()
    return status


def _formats(args) -> list[str]:
    from .transcribe import FORMATS

    formats = args.format.split(",")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"--format: unknown {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    return formats


_PROGRESS = {"transcribe": "transcribing", "align": "aligning"}


def _write_results(args, command: str, inputs: list[tuple[str, str]], run, formats: list[str]) -> int:
    """Run `run(inputs)` and print each transcript (or write it under -o, resuming a job that was
    stopped: files already done there are skipped), with a progress bar over audio seconds;
    report failed files and go on; print the real-time factor; exit status 1 if any failed."""
    from functools import partial

    from tqdm import tqdm

    from .audio import AudioError, audio_info
    from .jobs import OutputDir
    from .subtitles import SubtitleOptions
    from .train import current_context
    from .transcribe import format_transcript

    if not current_context().is_main:  # a torchrun rank but the first: it decodes its share, rank 0 writes
        for _ in run(inputs):
            pass
        return 0
    format_fn = partial(format_transcript, subtitles=SubtitleOptions(
        args.max_line_chars, args.max_lines, args.max_cue_seconds, args.min_cue_seconds, args.max_cps))
    failures, audio_seconds, start = 0, 0.0, time.perf_counter()
    with ExitStack() as stack:
        output = stack.enter_context(OutputDir(args.output_dir, formats, format_fn)) if args.output_dir else None
        if output is not None and output.done:
            remaining = [item for item in inputs if item[0] not in output.done]
            print(f"asr {command}: {len(inputs) - len(remaining)} files already done in {args.output_dir}, "
                  f"{len(remaining)} to go", file=sys.stderr)
            inputs = remaining

        def seconds(path: str) -> float:
            try:
                rate, samples, _ = audio_info(path)
                return samples / rate
            except (AudioError, OSError):
                return 0.0

        total = sum(seconds(path) for _, path in inputs)
        progress = stack.enter_context(tqdm(total=round(total, 1), desc=_PROGRESS[command], unit="s",
                                            bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s of audio [{elapsed}<{remaining}]",
                                            disable=None))
        for transcript in run(inputs):
            progress.update(min(transcript.duration, total - progress.n))
            if transcript.error:
                failures += 1
                progress.write(f"asr {command}: skipped {transcript.audio}: {transcript.error}", file=sys.stderr)
                continue
            audio_seconds += transcript.duration
            if output is None:
                sys.stdout.write(format_fn(transcript, formats[0]))
            else:
                output.write(transcript)
    elapsed = time.perf_counter() - start
    rtf = f"{elapsed / audio_seconds:.3f}" if audio_seconds else "n/a"
    print(f"asr {command}: {len(inputs) - failures} of {len(inputs)} files, {audio_seconds:.1f} s of audio "
          f"in {elapsed:.1f} s (real-time factor {rtf})", file=sys.stderr)
    return 1 if failures else 0


def _graph_from_flags(args, tokens, topology):
    """The graph chosen by --graph or --lexicon/--lm (None: the model directory's own), for a
    model whose frames spell tokens as `topology` says."""
    from .decoding import DecodingGraph
    from .lang import build_hlg
    from .lm import read_arpa
    from .tokenizer import read_lexicon

    if args.graph and (args.lexicon or args.lm):
        raise ValueError("give either --graph or --lexicon [--lm], not both")
    if args.graph:
        graph = DecodingGraph.load(args.graph, tokens)
        if graph.topology.name != topology.name:
            raise ValueError(f"--graph {args.graph} was compiled for a {graph.topology.name.upper()} model, this model "
                             f"was trained with {topology.name.upper()}: compile it with `asr compile-graph MODEL_DIR`")
        return graph
    if args.lm and not args.lexicon:
        raise ValueError("--lm needs --lexicon (the words' spellings in the model's tokens)")
    if args.lexicon:
        return build_hlg(tokens, read_lexicon(args.lexicon), read_arpa(args.lm) if args.lm else None,
                         topology=topology)
    return None


def beam_options(args, model_defaults: dict):
    """BeamOptions from the search flags over the model directory's defaults, or None when no
    flag asks for a beam search."""
    from .arpa_table import ArpaTable
    from .decoding import BeamOptions

    given = {"beam": args.beam, "max_active": args.max_active, "lattice_beam": args.lattice_beam,
             "lm_scale": args.lm_scale, "word_score": args.word_score, "nbest": args.nbest,
             "rescore_lm": ArpaTable.read(args.rescore_lm, progress=True) if args.rescore_lm else None}
    given = {name: value for name, value in given.items() if value is not None}
    return BeamOptions(**{**model_defaults, **given}) if given else None


def _cmd_compile_graph(args) -> int:
    from .decoding.topology import CTCTopology, load_topology
    from .lang import build_hlg
    from .lm import read_arpa
    from .model_dir import GRAPH_FOLDER
    from .tokenizer import read_lexicon, read_tokens_txt

    model_dir = Path(args.tokens) if Path(args.tokens).is_dir() else None
    tokens = read_tokens_txt(model_dir / "tokens.txt" if model_dir else args.tokens)
    topology = load_topology(model_dir / GRAPH_FOLDER) if model_dir else CTCTopology()
    if args.modified_topology:
        if topology.name != "ctc":
            raise ValueError(f"--modified-topology is for CTC models; {args.tokens} was trained with "
                             f"{topology.name.upper()}")
        topology = CTCTopology(modified=True)
    start = time.perf_counter()
    graph = build_hlg(tokens, read_lexicon(args.lexicon), read_arpa(args.lm) if args.lm else None,
                      topology=topology)
    graph.save(args.output_dir)
    print(f"asr compile-graph: {len(graph.words):,} words, HLG with {graph.graph.num_nodes:,} nodes and "
          f"{graph.graph.num_arcs:,} arcs in {time.perf_counter() - start:.1f} s (process peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB) -> {args.output_dir}", file=sys.stderr)
    return 0


def _cmd_train(args) -> int:
    from .train import cleanup, init_distributed, rank_device
    from .training import read_settings, train_from_manifests, training_from_config

    context = init_distributed()  # under torchrun: this process's rank; otherwise a single process
    # Progress bars alone would hide what users of a long run look for: each epoch's validation
    # loss and WER, the checkpoints written, and the data and model sizes (rank 0's; the other
    # ranks say only what goes wrong).
    logging.basicConfig(level=logging.INFO if context.is_main else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")
    changes = read_settings(args.config) if args.config else {}
    flags = {"tokens": "phone" if args.lexicon else args.tokens, "lm_order": args.lm_order}
    changes.update({name: value for name, value in flags.items() if value is not None})
    if args.epochs is not None:
        changes["train"] = {**changes.get("train", {}), "epochs": args.epochs}
    if args.loss is not None:
        changes["loss"] = args.loss
    config = training_from_config(changes, args.config or "config")  # checked whole before anything runs
    try:
        folder = train_from_manifests(args.train, args.valid, args.exp_dir, config, args.lexicon,
                                      rank_device(args.device, context), args.seed)
    finally:
        cleanup()
    if context.is_main:
        print(f"asr train: model directory {folder} (try: asr transcribe {folder} AUDIO)", file=sys.stderr)
    return 0


def _cmd_lm(args) -> int:
    from .lm import estimate_kneser_ney, write_arpa

    def sentences():
        for name in args.text:
            with open(name, encoding="utf-8") as f:
                for line in f:
                    words = line.split()[1:] if args.kaldi_text else line.split()
                    if words:
                        yield words

    lm = estimate_kneser_ney(sentences(), order=args.order)
    write_arpa(lm, args.output)
    sizes = ", ".join(f"{sum(1 for g in lm.probs if len(g) == n):,} {n}-grams" for n in range(1, lm.order + 1))
    print(f"asr lm: wrote {args.output} ({sizes})", file=sys.stderr)
    return 0


def _add_audio_arguments(command: argparse.ArgumentParser, default_format: str, json_help: str) -> None:
    """MODEL, AUDIO..., output format and place, device, batch size and subtitle limits:
    shared by transcribe and align."""
    from .subtitles import SubtitleOptions

    command.add_argument("model", help="model directory written by a recipe or `asr train` (e.g. exp/digits/model)")
    command.add_argument("audio", nargs="+", help="audio files, directories, wav.scp files or .jsonl manifests")
    command.add_argument("-f", "--format", default=default_format,
                         help=f"comma-separated output formats: txt (Kaldi text), {json_help}, ctm, srt, vtt (one "
                              f"subtitle file per input; need -o). Without -o only the first is printed. "
                              f"Default: {default_format}")
    command.add_argument("-o", "--output-dir", help="write transcripts.{txt,json,ctm} and ID.{srt,vtt} here, each "
                         "file's as soon as it is done; rerun with the same -o to go on after a stop (files listed "
                         "in its done.jsonl are skipped)")
    command.add_argument("--device", default="cpu", help="torch device for the encoder (cpu, cuda, cuda:1)")
    command.add_argument("--batch-size", type=int, default=8, help="encoder windows and segments processed together "
                         "(default 8)")
    cues = command.add_argument_group("subtitles (srt, vtt)", "Cues hold phrases, broken at pauses and segment "
                                      "ends, within these limits (the Netflix/BBC guidelines by default).")
    defaults = SubtitleOptions()
    cues.add_argument("--max-line-chars", type=int, default=defaults.max_line_chars,
                      help=f"characters per line (default {defaults.max_line_chars})")
    cues.add_argument("--max-lines", type=int, default=defaults.max_lines,
                      help=f"lines per cue (default {defaults.max_lines})")
    cues.add_argument("--max-cue-seconds", type=float, default=defaults.max_seconds,
                      help=f"longest cue (default {defaults.max_seconds:g} s)")
    cues.add_argument("--min-cue-seconds", type=float, default=defaults.min_seconds,
                      help=f"shortest cue, stretched into the silence around it (default {defaults.min_seconds:g} s)")
    cues.add_argument("--max-cps", type=float, default=defaults.max_chars_per_second,
                      help=f"reading speed in characters per second, where the pauses leave room "
                           f"(default {defaults.max_chars_per_second:g})")

def _add_score(commands) -> None:
    """`asr score`: error rates of two Kaldi text files."""
    command = commands.add_parser(
        "score", help="word/character error rates of hypotheses against references",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compare two Kaldi `text` files (`utt-id word word ...` per line) utterance by utterance "
                    "and print %WER and %CER in Kaldi's format plus an sclite-style summary "
                    "(Snt Wrd Corr Sub Del Ins Err S.Err, in % of reference words).",
        epilog="examples: asr score data/test/text exp/decode/text --details\n"
               "          asr transcribe MODEL dev.jsonl > hyp.txt && asr score dev.jsonl hyp.txt",
    )
    command.add_argument("ref", help="reference transcripts (Kaldi text, or the JSONL manifest that was decoded)")
    command.add_argument("hyp", help="hypothesis transcripts (Kaldi text); missing utterances count as empty")
    command.add_argument("--details", action="store_true", help="print every utterance's alignment (*** marks a gap)")
    command.add_argument("--json", action="store_true", help="print the counts as JSON instead")
    command.set_defaults(run=_cmd_score)


def _add_transcribe(commands) -> None:
    """`asr transcribe`: audio files in, transcripts out."""
    from .decoding import BeamOptions
    from .longform import FULL_ATTENTION_CONTEXT_SECONDS, VADS, ChunkOptions, SegmentOptions

    command = commands.add_parser(
        "transcribe", help="transcribe audio files with a trained model directory",
        description="Decode audio files through the model directory's graph (graph/HLG.pt), or a graph given by\n"
                    "--graph or --lexicon/--lm, and print `id text`\n"
                    "per file (Kaldi `text`). AUDIO may be audio files (wav, flac, sph, mp3, ...), directories\n"
                    "(searched recursively), Kaldi wav.scp files or JSONL manifests. A file that cannot be\n"
                    "read is reported and skipped, and the exit status is then 1; an empty file gets an empty\n"
                    "transcript. The real-time factor is printed at the end.",
        epilog="examples:\n  asr transcribe exp/digits/model recording.wav\n"
               "  asr transcribe exp/digits/model data/test/wav.scp -f txt,json,ctm -o out/\n"
               "  asr transcribe exp/yesno/model waves/ -f srt -o subtitles/\n"
               "  asr transcribe exp/an4/model test/ --lexicon lexicon.txt --lm 3gram.arpa --beam 14\n"
               "  asr transcribe exp/an4/model one.wav --graph graph/ --nbest 5 --rescore-lm 4gram.arpa -f json\n"
               "  asr transcribe exp/an4/model test/ -o out/ --jobs 4                  (4 processes, one machine)\n"
               "  torchrun --nproc_per_node 8 -m asr.cli transcribe MODEL test/ -o out/ --device cuda\n"
               "      (8 GPUs, each decoding its share; rank 0 writes out/ in input order)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_audio_arguments(command, "txt", "json (one object per line, with word times)")
    search = command.add_argument_group(
        "graph and search", "By default the model directory's graph is searched exactly (Viterbi). A larger "
        "graph, e.g. a lexicon with an n-gram LM, is searched with a WFST beam search.")
    search.add_argument("--graph", help="graph directory written by `asr compile-graph` for this model's tokens")
    search.add_argument("--lexicon", help="lexicon.txt (WORD TOKEN TOKEN ...) to compile a graph from on the fly")
    search.add_argument("--lm", help="ARPA LM for --lexicon (default: any word sequence, words equally likely)")
    search.add_argument("--beam", type=float, help="score beam: hypotheses this far below the best are dropped "
                        f"(default {BeamOptions.beam:g}; larger is slower and more accurate)")
    search.add_argument("--max-active", type=int, help="at most this many graph states per file and frame "
                        f"(default {BeamOptions.max_active})")
    search.add_argument("--lm-scale", type=float, help="graph (LM) score weight (default: the model directory's "
                        f"decoding.json, else {BeamOptions.lm_scale:g})")
    search.add_argument("--word-score", type=float, help="bonus added per word (default: decoding.json, else "
                        f"{BeamOptions.word_score:g})")
    search.add_argument("--nbest", type=int, help="also list the N best word sequences (json: \"nbest\")")
    search.add_argument("--rescore-lm", metavar="ARPA", help=f"rescore the {BeamOptions.RESCORED_PATHS} best with this (larger) LM; needs "
                        "the graph's own LM (--lm, or lm.arpa in the --graph directory)")
    search.add_argument("--lattice-beam", type=float, help="word sequences this far below the best are kept in "
                        f"the lattice for --nbest/--rescore-lm (default {BeamOptions.lattice_beam:g})")
    search.add_argument("--prefix-beam", type=int, metavar="K", help="no graph: CTC prefix beam search keeping K "
                        "prefixes (character and word-piece models; any word can come out)")
    search.add_argument("--greedy", action="store_true", help="no graph, no search: the best token of every frame "
                        "(fastest; words for character and word-piece models, phones for phone models)")
    search.add_argument("--hotwords", metavar="FILE", help="bias the search toward these phrases (sherpa-onnx's "
                        "format: a phrase a line, optionally ending in ' :SCORE', the bonus per token of the "
                        "prefix search or per word of the graph search)")
    search.add_argument("--hotword-score", type=float, default=1.5, help="bonus per token of a phrase without a "
                        "score of its own (default 1.5)")
    long = command.add_argument_group(
        "long recordings", "Files of any length are read in blocks; the encoder sees windows of --chunk-seconds with "
        "context each side, and the search decodes segments cut at pauses, so memory does not grow with length. "
        "A file no longer than --max-segment-seconds is searched whole, unless --vad marks silences in it (its "
        "pauses still split the JSON segments and subtitle cues).")
    chunk, segments = ChunkOptions(), SegmentOptions()
    long.add_argument("--chunk-seconds", type=float, default=chunk.chunk_seconds,
                      help=f"encoder output per window (default {chunk.chunk_seconds:g} s)")
    long.add_argument("--context-seconds", type=float, help="context each side of a window (default: exact for "
                      f"windowed-attention models, {FULL_ATTENTION_CONTEXT_SECONDS:g} s for full attention)")
    long.add_argument("--pause-seconds", type=float, default=segments.pause_seconds,
                      help=f"a pause this long ends a segment, or a phrase in a file searched whole "
                      f"(default {segments.pause_seconds:g} s)")
    long.add_argument("--max-segment-seconds", type=float, default=segments.max_segment_seconds,
                      help=f"longer segments are cut at their longest pause (default {segments.max_segment_seconds:g} s)")
    command.add_argument("--jobs", type=int, default=1, help="decode in this many worker processes, each with its "
                         "share of the CPU threads; outputs are the same, in input order (default 1). For several "
                         "GPUs or machines use torchrun instead: torchrun --nproc_per_node N -m asr.cli transcribe "
                         "... (rank 0 writes)")
    long.add_argument("--vad", choices=VADS, help="find pauses with this voice activity detector instead of the "
                      "model's blank frames (silero: pip install 'asr[vad]'; 8 and 16 kHz models)")
    command.set_defaults(run=_cmd_transcribe)


def _add_align(commands) -> None:
    """`asr align`: forced alignment of known transcripts."""
    command = commands.add_parser(
        "align", help="forced alignment: word and token times of known transcripts, optionally plotted",
        description="Align each audio file with its transcript (from a JSONL manifest's text, a Kaldi `text`\n"
                    "file given by --text, or --transcript for a single file) and print word times; json also\n"
                    "lists token times. --plot DIR draws ID.png per file: the token posteriors over time with\n"
                    "the aligned path and the words' spans. Words missing from the lexicon become <unk> when\n"
                    "it has one; otherwise, as for unreadable audio or a transcript longer than the audio can\n"
                    "hold, the file is reported and skipped and the exit status is 1.",
        epilog="examples:\n  asr align exp/digits/model one.wav --transcript 'FOUR TWO' -f json --plot plots/\n"
               "  asr align exp/yesno/model data/test.jsonl -f ctm -o alignments/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_audio_arguments(command, "ctm", "json (one object per line, with word and token times)")
    command.add_argument("--text", help="Kaldi text file: utterance id, then its words")
    command.add_argument("--transcript", help="the words of the single audio file given")
    command.add_argument("--plot", metavar="DIR", help="draw ID.png per file here")
    command.set_defaults(run=_cmd_align)


def _add_compile_graph(commands) -> None:
    """`asr compile-graph`: an HLG folder from tokens, a lexicon and an LM."""
    command = commands.add_parser(
        "compile-graph", help="compile a decoding graph HLG from tokens, a lexicon and an ARPA LM",
        description="Build HLG = H o min(det(L o G)) (H: the model's topology over its tokens: CTC's, or ASG's\n"
                    "for a model trained with --loss asg, read from a model directory given as --tokens; L: the lexicon with\n"
                    "Kaldi-style disambiguation symbols, G: the ARPA LM, or a uniform word loop without one)\n"
                    "and write a graph directory (HLG.pt, words.txt, tokens.txt, lexicon.txt, and lm.arpa\n"
                    "with --lm, for rescoring) for `asr transcribe --graph`. LM words missing from the\n"
                    "lexicon are dropped with a warning.",
        epilog="example:\n  asr lm data/train/text --kaldi-text -o lm/3gram.arpa\n"
               "  asr compile-graph --tokens exp/an4/model --lexicon data/lexicon.txt --lm lm/3gram.arpa -o graph/\n"
               "  asr transcribe exp/an4/model test.wav --graph graph/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_argument("--tokens", required=True, help="tokens.txt, or a model directory holding one")
    command.add_argument("--lexicon", required=True, help="lexicon.txt: WORD TOKEN TOKEN ... per line")
    command.add_argument("--lm", help="ARPA language model (default: a uniform loop over the words)")
    command.add_argument("-o", "--output-dir", required=True, help="graph directory to write")
    command.add_argument("--modified-topology", action="store_true",
                               help="k2's O(V) CTC topology (smaller HLG for large token sets such as BPE)")
    command.set_defaults(run=_cmd_compile_graph)


def _add_train(commands) -> None:
    """`asr train`: manifests in, a model directory out."""
    command = commands.add_parser(
        "train", help="train a CTC encoder on manifests and write a model directory",
        description="Train a CTC encoder on JSONL manifests (id, audio, duration, text, speaker; see\n"
                    "asr.data), with validation loss and greedy WER every epoch, checkpoints in EXP_DIR (the\n"
                    "last 5 kept; rerunning the same command resumes), then estimate a Kneser-Ney LM of the\n"
                    "training transcripts, compile HLG over their words and write EXP_DIR/model for\n"
                    "`asr transcribe`. Without --config it trains what the AN4 recipe does: a 6 x 144\n"
                    "conformer, speed-perturbed copies (0.9, 1.1), SpecAugment, 30% of reads band-limited to\n"
                    "8 kHz, 3 epochs of warmup, about 60 hours of audio in all (10 to 60 epochs), and the\n"
                    "average of the last 5 epochs as the final model. --config is a JSON file overriding any\n"
                    "of it (asr.training.RecognizerConfig; the whole config is checked before anything runs\n"
                    "and written to EXP_DIR/config.json): {\"model\": {EncoderConfig, e.g. \"architecture\":\n"
                    "\"transformer\"}, \"train\": {TrainerConfig, e.g. \"epochs\": 40}, \"loss\": \"ctc\" or {\"name\": \"crctc\", ...},\n"
                    "\"noise\": {NoiseOptions} or null, \"augment\": {SpecAugmentOptions} or null (off),\n"
                    "\"speeds\": [0.9, 1.1], \"band_limits\": [8000], \"band_limit_p\": 0.3, \"sample_rate\": 16000,\n"
                    "\"batch_seconds\": 120, \"cache\": null, \"tokens\": \"char\", \"lm_order\": 3, \"lm_scale\": 0.5}.",
        epilog="examples:\n  asr train --train data/train.jsonl --valid data/dev.jsonl --exp-dir exp/char\n"
               "  asr train --train data/train.jsonl --valid data/dev.jsonl --exp-dir exp/phone "
               "--lexicon etc/an4.dic",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_argument("--train", required=True, help="training manifest (.jsonl)")
    command.add_argument("--valid", required=True, help="validation manifest (.jsonl)")
    command.add_argument("--exp-dir", required=True, help="checkpoints, logs, lm.arpa and model/ go here")
    command.add_argument("--tokens", help="char, or bpe:N for N sentencepiece tokens (default: the config's, char)")
    command.add_argument("--lexicon", help="train on phones: lexicon.txt with WORD PHONE PHONE ... lines")
    command.add_argument("--config", help="JSON file of settings overriding the defaults (see above)")
    command.add_argument("--epochs", type=int, help="override the config's number of epochs")
    command.add_argument("--loss", help="ctc (default), crctc, mmi (token-bigram denominator), asg (no blank, learned "
                         "transitions), wordpiece (every segmentation into --tokens bpe:N pieces), or your own loss as "
                         "path/to/file.py:factory or module.path:factory: factory(tokenizer=, transcripts=, "
                         "**options) returns a torch module called as loss(log_probs, targets, input_lengths, "
                         "target_lengths) (see examples/custom_graph_loss.py); options go in --config's \"loss\"")
    command.add_argument("--lm-order", type=int, help="n-gram order of the graph's LM (default: the config's, 3)")
    command.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1. Data-parallel on several GPUs or "
                         "processes: torchrun --nproc_per_node N -m asr.cli train ... (--device cuda: each rank "
                         "its own GPU; on CPUs gloo); rank 0 writes the files, the batch is shared out")
    command.add_argument("--seed", type=int, default=0)
    command.set_defaults(run=_cmd_train)


def _add_lm(commands) -> None:
    """`asr lm`: a Kneser-Ney ARPA model from text."""
    command = commands.add_parser(
        "lm", help="estimate a back-off n-gram LM (modified Kneser-Ney) from text, as ARPA",
        description="Estimate an interpolated modified Kneser-Ney n-gram model (as KenLM's lmplz does) from "
                    "text files with one sentence per line, and write it in ARPA format. Words are used as "
                    "written (normalize case beforehand); <unk> gets the uniform share of the unigram mass.",
        epilog="example: asr lm data/train/text --kaldi-text --order 3 -o data/lm/3gram.arpa",
    )
    command.add_argument("text", nargs="+", help="text files, one sentence per line")
    command.add_argument("-o", "--output", required=True, help="ARPA file to write")
    command.add_argument("--order", type=int, default=3, help="n-gram order (default 3)")
    command.add_argument("--kaldi-text", action="store_true", help="lines start with an utterance id (Kaldi `text`): drop it")
    command.set_defaults(run=_cmd_lm)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr",
        description="Speech recognition with differentiable WFSTs. Run `asr COMMAND --help` for a command's options.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_score, _add_transcribe, _add_align, _add_compile_graph, _add_train, _add_lm):
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def show(message, category, filename, lineno, file=None, line=None):  # one line, no source excerpt
        print(f"asr {args.command}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        try:
            return args.run(args)
        except BrokenPipeError:  # the reader left (`asr score ... | head -1`): stop quietly, as `cat` does
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
            return 128 + signal.SIGPIPE
        except (OSError, ValueError) as error:
            print(f"asr {args.command}: error: {error}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
