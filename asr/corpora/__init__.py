"""Corpus preparation: turn a corpus as distributed into manifests (`asr.data.Utterance`)."""
