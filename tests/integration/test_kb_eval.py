"""`autobot kb eval` on the IR collections of ../shared/eval/ir: with the
built-in embedder and the default settings (the same for all four), hybrid
must beat the reference BM25 figures of ../shared/README.md on every
collection, and bm25 alone must not fall more than 0.01 below them."""
import json

import pytest

from conftest import run_cli, shared_path

# ../shared/README.md: reference BM25 (k1 1.2, b 0.75, no stemming, 60 stop words)
REFERENCE = {
    "cran": {"ndcg@10": 0.3726, "map": 0.2890, "recall@100": 0.7132},
    "cisi": {"ndcg@10": 0.2903, "map": 0.1502, "recall@100": 0.3995},
    "med": {"ndcg@10": 0.6890, "map": 0.5076, "recall@100": 0.7974},
    "adi": {"ndcg@10": 0.4255, "map": 0.3532, "recall@100": 0.8092},
}


@pytest.mark.parametrize("collection", sorted(REFERENCE))
def test_eval_beats_reference_bm25(collection):
    d = shared_path("eval", "ir", collection)
    p = run_cli("kb", "eval", d, "--json", timeout=600)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert got["collection"] == collection and got["docs"] > 0 and got["queries"] > 0
    ref = REFERENCE[collection]
    print("%s: %s" % (collection, json.dumps(got["modes"])))
    for metric, value in ref.items():
        assert got["modes"]["hybrid"][metric] > value, (collection, "hybrid", metric)
        assert got["modes"]["bm25"][metric] >= value - 0.01, (collection, "bm25", metric)


def test_eval_refuses_a_folder_that_is_not_beir(tmp_path):
    p = run_cli("kb", "eval", str(tmp_path))
    assert p.returncode == 1 and "not a BEIR folder" in p.stderr
