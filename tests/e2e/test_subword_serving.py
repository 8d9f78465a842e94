"""A BPE model from the commands a person runs: `s2s subword train` for both sides, `s2s train` with
the tokeniser files, tied embeddings and BPE-dropout, `s2s export`, then `s2s serve` in a process
where torch cannot be imported: the server cuts text with the bundle's merges and returns what the
PyTorch reference decoder writes, token for token."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from cli_support import s2s

from export.manifest import load_schema
from service.client import TranslatorClient

NO_TORCH_S2S = [
    sys.executable,
    "-c",
    "import sys; sys.modules['torch'] = None; from s2s.cli import main; sys.exit(main(sys.argv[1:]))",
]
TEXTS = ["Tuesday, 10 July 2007", "3 mars 1999", "le 1er juillet 2007", "Dienstag, 10. Juli 2007"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(work directory, checkpoint) of a tiny BPE model trained on dates written as a pair file."""
    from training.dates import train_valid_pairs

    work = tmp_path_factory.mktemp("bpe")
    pairs, _ = train_valid_pairs(1200, 1, seed=3)
    (work / "pairs.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    for side, size in (("src", 150), ("tgt", 30)):
        done = s2s("subword", "train", "--data", work / "pairs.tsv", "--side", side, "--vocab-size", size,
                   "--out", work / f"{side}.json")  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert f"{size} pieces" in done.stdout and "0 round-trip failures" in done.stdout, done.stdout
    done = s2s("train", "--data", work / "pairs.tsv", "--out", work / "run", "--src-tokenizer",
               work / "src.json", "--tgt-tokenizer", work / "tgt.json", "--tie-embeddings",
               "--bpe-dropout", "0.1", "--hidden", "32", "--emb-dim", "16", "--batch-size", "32",
               "--lr", "0.01", "--max-steps", "120", "--epochs", "4", "--valid-bleu", "0",
               "--threads", "1", "--no-progress")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return work, work / "run" / "checkpoint.pt"


def test_the_checkpoint_and_the_bundle_carry_the_learned_merges(trained: tuple[Path, Path]) -> None:
    import torch

    work, checkpoint = trained
    saved = torch.load(checkpoint, weights_only=True)
    for side in ("src", "tgt"):
        learned = json.loads((work / f"{side}.json").read_text(encoding="utf-8"))
        assert saved[f"{side}_tokenizer"] == {k: v for k, v in learned.items() if k != "learned"}
        assert learned["kind"] == "bpe" and learned["merges"]
    assert saved["config"]["tie_embeddings"] is True
    assert torch.equal(saved["model"]["decoder.out.weight"], saved["model"]["decoder.embed.weight"])
    done = s2s("export", checkpoint, "--out", work / "bundles", "--name", "bpe")
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((work / "bundles" / "bpe" / "1" / "manifest.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(load_schema()).validate(manifest)
    assert manifest["src_tokenizer"] == saved["src_tokenizer"]
    broken = {
        **manifest,
        "tgt_tokenizer": {k: v for k, v in manifest["tgt_tokenizer"].items() if k != "merges"},
    }
    with pytest.raises(jsonschema.ValidationError):  # a bpe tokeniser without its merges
        jsonschema.Draft202012Validator(load_schema()).validate(broken)


def test_a_server_without_torch_serves_the_bpe_bundle_as_pytorch_decodes(
    trained: tuple[Path, Path],
) -> None:
    from s2s.tokenizer import Tokenizer
    from training.decode import DecodeConfig, decode
    from training.model import load_checkpoint

    work, checkpoint = trained
    bundle = work / "bundles" / "bpe" / "1"
    if not bundle.is_dir():
        done = s2s("export", checkpoint, "--out", work / "bundles", "--name", "bpe")
        assert done.returncode == 0, done.stderr[-3000:]
    model, ckpt = load_checkpoint(checkpoint)
    src_tok, tgt_tok = (Tokenizer.from_dict(ckpt[k]) for k in ("src_tokenizer", "tgt_tokenizer"))
    server = subprocess.Popen(
        [*NO_TORCH_S2S, "serve", "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0",
         "--bundle", str(bundle), "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = server.stdout.readline()  # type: ignore[union-attr]
        match = re.search(r"on 127\.0\.0\.1:(\d+)", line)
        assert match, f"no address line: {line!r}; {server.stderr.read()[-3000:] if server.poll() else ''}"  # type: ignore[union-attr]
        with TranslatorClient(f"127.0.0.1:{match.group(1)}", timeout=30) as client:
            info = client.model_info()
            assert (info.src_tokenizer, info.tgt_tokenizer) == ("bpe", "bpe")
            for beam in (1, 3):
                served = client.translate(TEXTS, beam_size=beam, max_length=32)
                sources = [src_tok.encode(t) for t in TEXTS]
                reference = decode(model, sources, DecodeConfig(beam_size=beam, max_len=32))
                for text, got, ref in zip(TEXTS, served, reference, strict=True):
                    assert got.hypotheses[0].token_ids == ref[0].tokens, (text, beam)
                    assert got.hypotheses[0].text == tgt_tok.decode(ref[0].tokens), (text, beam)
    finally:
        server.terminate()
        server.communicate(timeout=60)


def test_subword_commands_in_processes(trained: tuple[Path, Path], tmp_path: Path) -> None:
    work, _ = trained
    done = s2s("subword", "encode", "--tokenizer", work / "tgt.json", "2007-07-10")
    assert done.returncode == 0 and "".join(done.stdout.split()).replace("▁", "") == "2007-07-10", done.stdout
    # A vocabulary smaller than the text's characters: an input error, said in one line.
    done = s2s(
        "subword", "train", "--data", work / "pairs.tsv", "--vocab-size", "10", "--out", tmp_path / "x.json"
    )
    assert done.returncode == 2 and not (tmp_path / "x.json").exists()
    assert len(done.stderr.strip().splitlines()) == 1 and "below the" in done.stderr, done.stderr
    done = s2s("subword", "encode", "--tokenizer", tmp_path / "missing.json", "text")
    assert done.returncode == 2 and "tokeniser file not found" in done.stderr, done.stderr
