"""Learning tests: a small model trained with each loss really learns the synthetic task."""

import graphs
from asr.losses import CTCLoss, GraphLoss, MMILoss, bigram_log_probs

from .synthetic import make_task, train


def test_ctc_learns():
    first, last, error = train(CTCLoss())
    assert last < 0.2 * first and error < 0.05, (first, last, error)


def test_mmi_learns():
    _, _, targets, lengths = make_task()
    prior = bigram_log_probs([t[:n].tolist() for t, n in zip(targets, lengths)], 5)
    first, last, error = train(MMILoss(5, transitions=prior))
    assert last < 0.2 * first and error < 0.05, (first, last, error)


def test_graph_loss_with_user_graphs_learns():
    # The user's graph function here builds CTC graphs: GraphLoss must train like CTCLoss.
    loss = GraphLoss(lambda targets: graphs.ctc_graph(*targets))
    first, last, error = train(lambda lp, t, il, tl: loss(lp, (t, tl), il))
    assert last < 0.2 * first and error < 0.05, (first, last, error)
