"""The word-piece loss as a recognizer's training loss: a model with sentencepiece tokens is
trained on every segmentation of each transcript into its pieces (`TransducerLoss`), not only
on the one sentencepiece's encoder picks."""

from __future__ import annotations

import torch

from .transducer import TransducerLoss


class WordPieceLoss(torch.nn.Module):
    """`TransducerLoss` over a word-piece tokenizer's pieces (emission column i + 1 is piece i,
    column 0 the blank), called like every training loss with token ids: each target row is
    turned back into its text, whose segmentations are then all allowed. `ngram` > 0 adds
    learned piece n-gram transitions with their normalizing denominator (kept in the
    checkpoint; decoding uses CTC's topology and the word LM, as for the other losses)."""

    def __init__(self, tokenizer, ngram: int = 0, reduction: str = "mean"):
        super().__init__()
        if getattr(tokenizer, "kind", None) != "bpe":
            raise ValueError(f"the wordpiece loss needs word-piece tokens (--tokens bpe:N), "
                             f"not {getattr(tokenizer, 'kind', type(tokenizer).__name__)!r} tokens")
        self.detokenize = tokenizer.decode
        self.transducer = TransducerLoss(tokenizer.tokens[1:], blank=0, ngram=ngram, reduction=reduction)

    def forward(self, log_probs, targets, input_lengths, target_lengths) -> torch.Tensor:
        lengths = torch.as_tensor(target_lengths).reshape(-1).tolist()
        if targets.dim() == 1:  # concatenated, as torch's CTC accepts
            rows = torch.split(targets, lengths)
        else:
            rows = [row[:length] for row, length in zip(targets, lengths)]
        texts = [self.detokenize(row.tolist()) for row in rows]
        return self.transducer(log_probs, texts, input_lengths)
