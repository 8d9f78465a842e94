"""Read a model bundle: the only thing the server loads (docs/design.md, "The bundle").

Torch-free and jsonschema-free (the serving image has neither): the structural checks below are
the ones the server depends on; export/manifest.schema.json is the full contract, checked in
tests. Loading verifies the format version and the sha256 of every listed file, so a bundle that
was copied half-way or edited by hand fails at start-up, not on the first request.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from s2s.tokenizer import Tokenizer, TokenizerError

FORMAT = "s2s-bundle"
FORMAT_VERSION = 1  # bump when a reader of version N could misread a version N+1 bundle
MANIFEST = "manifest.json"
GRAPHS = ("encoder", "decoder_step")
PRECISIONS = ("fp32", "int8", "fp16")
# Where the repository's shipped default bundle lives (scripts/build_default_bundle.sh rebuilds it).
DEFAULT_BUNDLE_DIR = Path(__file__).resolve().parent / "bundles" / "dates" / "1"

_REQUIRED = {
    "format": str,
    "format_version": int,
    "name": str,
    "version": str,
    "created": str,
    "exporter": dict,
    "model": dict,
    "special_ids": dict,
    "src_tokenizer": dict,
    "tgt_tokenizer": dict,
    "graphs": dict,
    "state": list,
    "files": dict,
    "training": dict,
    "variants": dict,
    "defaults": dict,
}
_MODEL_KEYS = (
    "cell", "score", "emb_dim", "hidden", "layers", "bidirectional", "attn_dim",
    "src_vocab_size", "tgt_vocab_size",
)  # fmt: skip


class BundleError(Exception):
    """A bundle cannot be used; the message names the bundle and what is wrong with it."""


@dataclass(frozen=True)
class ModelInfo:
    """The model's dimensions as the manifest records them."""

    cell: str  # "lstm" | "gru"
    score: str  # "dot" | "general" | "concat" | "additive"
    emb_dim: int
    hidden: int  # decoder hidden size H
    layers: int
    bidirectional: bool
    attn_dim: int  # width of the precomputed attention keys
    src_vocab_size: int
    tgt_vocab_size: int


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class Bundle:
    """A loaded, verified bundle directory. Cheap to keep; graphs are opened by the caller."""

    def __init__(self, path: Path, manifest: dict[str, Any]):
        self.path = path
        self.manifest = manifest
        self.name: str = manifest["name"]
        self.version: str = manifest["version"]
        self.created: str = manifest["created"]
        self.model = ModelInfo(**{k: manifest["model"][k] for k in _MODEL_KEYS})
        self.special_ids: dict[str, int] = dict(manifest["special_ids"])
        self.state: list[str] = list(manifest["state"])  # decoder state names; out = f"{name}_out"
        self.training: dict[str, Any] = manifest["training"]
        self.defaults: dict[str, Any] = manifest["defaults"]
        self.variants: dict[str, Any] = manifest["variants"]

    def __repr__(self) -> str:
        return f"Bundle({self.name!r}, version={self.version!r}, path={str(self.path)!r})"

    @cached_property
    def src_tokenizer(self) -> Tokenizer:
        return self._tokenizer("src_tokenizer")

    @cached_property
    def tgt_tokenizer(self) -> Tokenizer:
        return self._tokenizer("tgt_tokenizer")

    def _tokenizer(self, key: str) -> Tokenizer:
        try:
            return Tokenizer.from_dict(self.manifest[key])
        except TokenizerError as exc:
            raise BundleError(f"bundle {self.path}: {key} is invalid: {exc}") from exc

    @property
    def max_length(self) -> int:
        return int(self.defaults["max_length"])

    @property
    def max_length_ratio(self) -> float:
        return float(self.defaults["max_length_ratio"])

    def graph(self, graph: str) -> dict[str, Any]:
        """The manifest's description of a graph: file, inputs, outputs, dynamic_axes."""
        if graph not in GRAPHS:
            raise BundleError(f"unknown graph {graph!r}; expected one of {GRAPHS}")
        return self.manifest["graphs"][graph]

    def checksum(self, file: Path) -> str:
        """The manifest's sha256 of `file`, a path inside the bundle; BundleError if none is listed."""
        name = file.relative_to(self.path).as_posix()
        try:
            return str(self.manifest["files"][name])
        except KeyError:
            raise BundleError(f"bundle {self.path}: {name} has no checksum in 'files'") from None

    def precisions(self) -> list[str]:
        """Precisions this bundle holds graphs for: always fp32, plus its variants."""
        return ["fp32", *[v for v in self.variants if v in PRECISIONS and v != "fp32"]]

    def graph_path(self, graph: str, precision: str = "fp32", optimized: bool = False) -> Path:
        """Path of `graph` ("encoder" | "decoder_step") at `precision`.

        optimized=True returns the graph ONNX Runtime saved after optimisation (faster start-up),
        but only when the running onnxruntime is the version that wrote it (an optimised graph may
        use that version's internal operators); otherwise the plain graph.
        """
        self.graph(graph)  # validates the name
        if precision == "fp32":
            entry: dict[str, Any] = {"files": {g: self.manifest["graphs"][g]["file"] for g in GRAPHS}}
            entry["optimized"] = self.manifest.get("optimized")
        elif precision in self.variants:
            entry = self.variants[precision]
        else:
            raise BundleError(
                f"bundle {self.name}/{self.version} has no {precision!r} graphs; it has {self.precisions()}"
            )
        if optimized and entry.get("optimized") and _ort_version() == entry["optimized"]["onnxruntime"]:
            return self.path / entry["optimized"]["files"][graph]
        return self.path / entry["files"][graph]


def _ort_version() -> str | None:
    try:
        import onnxruntime
    except ImportError:  # reading a manifest must not need onnxruntime
        return None
    return str(onnxruntime.__version__)


def _check_structure(path: Path, manifest: Any) -> None:
    where = f"bundle {path}"
    if not isinstance(manifest, dict):
        raise BundleError(f"{where}: {MANIFEST} must hold a JSON object, got {type(manifest).__name__}")
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{where}: not an s2s bundle (format={manifest.get('format')!r}, want {FORMAT!r})")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{where}: unknown bundle format_version {version!r}; this s2s reads version "
            f"{FORMAT_VERSION} (re-export the checkpoint with this s2s, or upgrade s2s)"
        )
    for key, kind in _REQUIRED.items():
        if key not in manifest:
            raise BundleError(f"{where}: {MANIFEST} lacks required field {key!r}")
        if not isinstance(manifest[key], kind) or (kind is int and isinstance(manifest[key], bool)):
            raise BundleError(
                f"{where}: {MANIFEST} field {key!r} must be {kind.__name__}, "
                f"got {type(manifest[key]).__name__}"
            )
    missing = [k for k in _MODEL_KEYS if k not in manifest["model"]]
    if missing:
        raise BundleError(f"{where}: manifest 'model' lacks {missing}")
    for graph in GRAPHS:
        entry = manifest["graphs"].get(graph)
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise BundleError(f"{where}: manifest 'graphs' lacks {graph!r} with a 'file'")
        if entry["file"] not in manifest["files"]:
            raise BundleError(f"{where}: graph file {entry['file']!r} has no checksum in 'files'")


def _verify_files(path: Path, files: dict[str, str]) -> None:
    problems = []
    for name, expected in sorted(files.items()):
        file = path / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            problems.append(f"{name}: file names must be relative to the bundle directory")
        elif not file.is_file():
            problems.append(f"{name}: missing")
        elif (actual := sha256_file(file)) != expected:
            problems.append(f"{name}: sha256 mismatch (manifest {expected[:12]}…, file {actual[:12]}…)")
    if problems:
        raise BundleError(f"bundle {path} failed verification: " + "; ".join(problems))


def load_bundle(path: str | Path, *, verify_checksums: bool = True) -> Bundle:
    """Load and verify the bundle in `path` (the directory holding manifest.json).

    Raises BundleError for a missing directory, unreadable or corrupt JSON, an unknown format
    version, missing fields, or a file whose sha256 differs from the manifest.
    """
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"bundle directory {path} does not exist")
    manifest_path = path / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"bundle {path}: no {MANIFEST} (is this DIR/<name>/<version>/?)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"bundle {path}: {MANIFEST} is not valid JSON: {exc}") from exc
    _check_structure(path, manifest)
    if verify_checksums:
        _verify_files(path, manifest["files"])
    bundle = Bundle(path, manifest)
    bundle.src_tokenizer, bundle.tgt_tokenizer  # noqa: B018 - fail now on a bad vocabulary
    return bundle


def find_bundles(root: str | Path) -> list[Path]:
    """Bundle directories under `root` laid out as root/<name>/<version>/manifest.json, sorted."""
    root = Path(root)
    if (root / MANIFEST).is_file():
        return [root]
    return sorted(p.parent for p in root.glob(f"*/*/{MANIFEST}"))
