"""asr: speech recognition on differentiable graphs (audio, features, model, losses, training, decoding)."""
