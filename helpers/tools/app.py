"""``python -m helpers app``: a Gradio page that captions a photo with a trained bundle (lesson 12).

A photo comes as a file, from the webcam or from an address; the page shows the caption, every
beam with its score, and for an attention bundle where it looked for each word. A bad file gets
a sentence. Requests run one at a time, each on its own files, in the bundle's feature precision.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from helpers.config import Settings
from helpers.data.images import inspect_image, open_rgb
from helpers.decoding import beam_candidates
from helpers.features import extract_features
from helpers.model import Bundle, load_bundle
from helpers.photos import fetch_photo
from helpers.system.errors import CourseError


def answer(bundle: Bundle, settings: Settings, photo: str | None, beam_width: int) -> tuple[str, list, list]:
    """The caption of one photo file, its beams ``[[caption, score], ...]`` and, for attention, the maps per word."""
    if not photo:
        return "Choose a photo, take one with the webcam, or give the address of one.", [], []
    problem = inspect_image(photo).problem
    if problem:
        return f"Could not read it: {problem}.", [], []
    grid = bundle.feature_kind == "grid"
    weights, record = bundle.info["cnn_weights"], settings.precision_record
    found = extract_features([photo], weights=weights, precision=settings.precision, precision_record=record, grid=grid)
    if not len(found):
        return f"Could not read it: {found.skipped[Path(photo).name]}.", [], []
    beams = beam_candidates(bundle.captioner, bundle.vocab, found.features, int(beam_width))[0]
    maps = _maps(bundle, found.features, beams[0][0], photo) if grid else []
    return beams[0][0], [[caption, round(score, 3)] for caption, score in beams], maps


def _maps(bundle: Bundle, features: np.ndarray, caption: str, photo: str) -> list:
    """``(picture with its attention map, word)`` for every word of the caption (lesson 11's maps)."""
    from helpers.attention import attention_weights

    vocab, words = bundle.vocab, caption.split()
    alphas = attention_weights(bundle.captioner, features, np.array([[vocab.start_id, *vocab.encode(caption)]]))[0]
    picture = np.asarray(open_rgb(photo).resize((224, 224)), dtype=np.float32)
    shown = []
    for word, alpha in zip([*words, "endseq"], alphas):
        weight = np.kron(alpha.reshape(7, 7) / alpha.max(), np.ones((32, 32)))[..., None]
        shown.append(((picture * (0.25 + 0.75 * weight)).astype(np.uint8), word))
    return shown


def page(bundle: Bundle, settings: Settings):
    """The Gradio page of ``bundle``: ``page(...).launch()`` serves it, and in a notebook it shows inline."""
    import gradio as gr

    downloads = Path(tempfile.mkdtemp(prefix="caption-app-"))

    def caption(upload, camera, address, beam_width):
        try:
            photo = fetch_photo(address.strip(), downloads) if address and address.strip() else upload or camera
        except CourseError as error:
            return str(error), [], [], None
        text, beams, maps = answer(bundle, settings, photo, beam_width)
        return text, beams, maps, str(photo) if beams else None

    with gr.Blocks(title="Caption your photo") as demo:
        gr.Markdown(
            f"# Caption your photo\nA {bundle.info['architecture']} captioner trained on {bundle.info['dataset']}."
        )
        with gr.Row():
            upload = gr.File(label="A photo", type="filepath", elem_id="upload")
            camera = gr.Image(label="or the webcam", sources=["webcam"], type="filepath")
            with gr.Column():
                address = gr.Textbox(label="or the address of a photo", elem_id="address")
                beam_width = gr.Slider(1, 10, value=3, step=1, label="beam width")
                button = gr.Button("Caption", variant="primary", elem_id="caption-button")
        with gr.Row():
            shown = gr.Image(label="The photo captioned", interactive=False, height=240)
            with gr.Column(scale=2):
                text = gr.Textbox(label="Caption", elem_id="caption")
                beams = gr.Dataframe(headers=["caption", "score"], label="Every beam, best first")
        maps = gr.Gallery(label="Where it looked, word by word", visible=bundle.feature_kind == "grid", columns=6)
        inputs = [upload, camera, address, beam_width]
        button.click(caption, inputs, [text, beams, maps, shown], api_name="caption", concurrency_limit=1)
    return demo


def serve(settings: Settings, model: Path | None, port: int) -> int:
    """Serve the page of the bundle in ``model`` (default: the run's) on 127.0.0.1 until interrupted."""
    bundle = load_bundle(model or settings.artifacts_dir)
    print(f"Serving {model or settings.artifacts_dir} on http://127.0.0.1:{port} (Ctrl+C stops it).")
    page(bundle, settings).launch(server_name="127.0.0.1", server_port=port)
    return 0
