"""Caption image files with a trained model: ``python -m helpers caption`` (introduced in lesson 08).

    python -m helpers caption photo.jpg other.png [--model DIR] [--beam 3]

The model folder is a bundle saved by lesson 07 (``model.keras``, ``vocab.json``,
``model.json``; default: this dataset's artifacts folder). The images become ResNet50
features made the way the model's training features were (the bundle records the CNN
weights), then one line per image is printed: ``IMAGE<TAB>caption``. Unreadable images
are listed on stderr with the reason, and make the exit status 1.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable

from helpers.decoding import beam_search, greedy
from helpers.errors import CourseError
from helpers.features import extract_features
from helpers.training import Bundle, load_bundle


def caption_files(paths: Iterable[str | Path], bundle: Bundle, beam_width: int = 1) -> tuple[dict[str, str], dict[str, str]]:
    """Caption image files: ``({path: caption}, {path: why it was skipped})`` (lesson 08).

    ``beam_width`` 1 is greedy decoding, more is beam search.
    """
    if beam_width < 1:
        raise CourseError(f"The beam width must be 1 (greedy) or more, got {beam_width}.")
    paths = [Path(p) for p in paths]
    features = extract_features(paths, weights=bundle.info.get("cnn_weights"))
    captions: list[str] = []
    if len(features):
        if beam_width == 1:
            captions = greedy(bundle.captioner, bundle.vocab, features.features)
        else:
            captions = beam_search(bundle.captioner, bundle.vocab, features.features, beam_width=beam_width)
    by_name = dict(zip(features.images, captions))  # features name images by file name
    captioned = {str(p): by_name[p.name] for p in paths if p.name in by_name}
    skipped = {str(p): features.skipped[p.name] for p in paths if p.name in features.skipped}
    return captioned, skipped


def caption_images(images: list[Path], model: Path | None = None, beam: int = 1) -> int:
    """``python -m helpers caption``: print ``IMAGE<TAB>caption`` per image; 1 if any was skipped."""
    bundle = load_bundle(model)
    captioned, skipped = caption_files(images, bundle, beam)
    for path, caption in captioned.items():
        print(f"{path}\t{caption}")
    for path, why in skipped.items():
        print(f"skipped {path}: {why}", file=sys.stderr)
    return 1 if skipped else 0
