"""`--init-embeddings`: start a new model's input embeddings from word2vec vectors
(a text file from `seqtool export-vectors` or gensim)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seqtool.errors import ConfigError


def init_embeddings(model: Any, path: str | Path, tokenizer: Any,
                    tgt_tokenizer: Any = None) -> dict[str, Any]:
    """Copy the vectors of a word2vec text file into the tables the model names as its
    input embeddings (`model.input_embeddings()`): the LM's (with the adaptive
    embedding, only clusters held at full size, i.e. the head; the tied output layer
    starts from them too), a translation model's source and target embeddings. A
    token is looked up as is, then lower-cased; the special tokens keep their
    initialisation. Returns how many vocabulary words were found."""
    import torch

    from seqtool.data.vectors import read_word2vec
    from seqtool.data.word2vec import FIRST_WORD

    vecs = read_word2vec(path)
    tables = model.input_embeddings()
    if not tables:
        raise ConfigError(f"a {model.kind} model has no input embeddings to start from "
                          "vectors", "drop --init-embeddings")
    emb_dim = model.cfg.emb_dim
    if vecs.dim != emb_dim:
        raise ConfigError(f"{path} holds {vecs.dim}-dimensional vectors but model.emb_dim "
                          f"is {emb_dim}", f"--set model.emb_dim={vecs.dim}, or train "
                          f"vectors with --dim {emb_dim}")

    def rows(tok: Any) -> tuple[Any, Any]:
        ids, found = [], []
        for i in range(FIRST_WORD, tok.vocab_size):
            j = vecs.find(tok.id_to_token(i))
            if j is not None:
                ids.append(i)
                found.append(j)
        return torch.tensor(ids, dtype=torch.long), torch.from_numpy(vecs.matrix[found])

    report: dict[str, Any] = {"file": str(path), "dim": vecs.dim, "vectors": len(vecs)}
    with torch.no_grad():
        for table in tables:
            tok = tgt_tokenizer or tokenizer if table.side == "target" else tokenizer
            ids, values = rows(tok)
            emb = table.module
            set_rows = getattr(emb, "set_rows", None)  # AdaptiveEmbedding: the head only
            if set_rows is not None:
                written = int(set_rows(ids, values).sum())
            else:
                emb.weight[ids] = values.to(emb.weight.dtype)
                written = len(ids)
            report[table.name] = {"words": tok.vocab_size - FIRST_WORD, "found": len(ids),
                                  "copied": written}
    return report
