"""The README's graph example: compose, forward_score, backward, gradients."""

import graphs

# Emissions for 2 frames over labels {0, 1}, with learnable (here: uniform) scores ...
emissions = graphs.Graph()
for node in range(3):
    emissions.add_node(start=node == 0, accept=node == 2)
for frame in range(2):
    for label in range(2):
        emissions.add_arc(frame, frame + 1, label, weight=0.0)
emissions.weight.requires_grad_(True)
# ... composed with a target graph accepting "1 1" (score 1.0) or "0 1" (score 0.5).
target = graphs.Graph.from_arrays(src=[0, 0, 1], dst=[1, 1, 2], ilabel=[1, 0, 1], weight=[0.5, 0.0, 0.5],
                                  start=[0], accept=[2])
score = graphs.forward_score(graphs.compose(emissions, target))  # log(e^1.0 + e^0.5)
score.backward()
print(f"score {score.item():.4f}; gradient (arc posteriors) {emissions.weight.grad.tolist()}")
