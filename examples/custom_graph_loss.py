"""A new sequence loss in ~20 lines: CTC where every token must last at least two frames.

Write a function from targets to graphs; GraphLoss intersects them with the emissions
and differentiates through the graph. Run: python examples/custom_graph_loss.py
Train a recognizer with it: asr train --loss examples/custom_graph_loss.py:factory ...
"""

import torch

import graphs
from asr.losses import CTCLoss, GraphLoss


def min_duration_ctc_graph(tokens, blank=0):
    """Blanks anywhere; each token held >= 2 frames; a repeated token needs a blank between."""
    g = graphs.Graph()
    last = len(tokens) - 1
    before = [g.add_node(start=True, accept=last < 0)]  # nodes the next token may start from
    g.add_arc(before[0], before[0], blank)
    for i, token in enumerate(tokens):
        first, held, gap = g.add_node(), g.add_node(accept=i == last), g.add_node(accept=i == last)
        for node in before:
            g.add_arc(node, first, token)  # first frame of the token
        g.add_arc(first, held, token)  # second frame: now it has lasted long enough
        g.add_arc(held, held, token)  # any further frames
        g.add_arc(held, gap, blank)  # blanks after it
        g.add_arc(gap, gap, blank)
        before = [gap] if i < last and tokens[i + 1] == token else [held, gap]
    return g


def factory(tokenizer, transcripts, **options):
    """The loss `asr train --loss examples/custom_graph_loss.py:factory` trains with; its
    models decode through the usual CTC graphs (these paths are a subset of CTC's). An utterance
    too fast for two frames a token (on AN4 about 1 in 12 at 40 ms a frame) is skipped."""
    options.setdefault("zero_infinity", True)
    return GraphLoss(lambda batch: [min_duration_ctc_graph(tokens) for tokens in batch], **options)


if __name__ == "__main__":
    torch.manual_seed(0)
    log_probs = torch.randn(2, 12, 5).log_softmax(-1).requires_grad_()
    targets = [[1, 2, 2], [3]]
    loss = GraphLoss(lambda batch: [min_duration_ctc_graph(t) for t in batch], reduction="none")
    value = loss(log_probs, targets, [12, 9])
    value.sum().backward()
    ctc = CTCLoss(reduction="none")(log_probs, torch.tensor([[1, 2, 2], [3, 0, 0]]), [12, 9], [3, 1])
    print(f"min-duration CTC loss {[round(v, 4) for v in value.tolist()]}, plain CTC {[round(v, 4) for v in ctc.tolist()]}")
    print(f"gradient norm {log_probs.grad.norm():.4f}")
