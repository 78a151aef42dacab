"""Building blocks: recurrent layers, adaptive embeddings and softmax."""
