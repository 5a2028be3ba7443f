"""Share your captioner: a SavedModel that needs only TensorFlow, smaller LiteRT models, a web page (lesson 12).

:func:`export_savedmodel` writes a SavedModel whose ``serve`` endpoint takes encoded images (JPEG
or PNG bytes) and returns their captions: decoding, resizing, ResNet50's features (float32) and
the search loop, greedy or beam, in one TensorFlow graph, with the course's decoders' numbers.
:func:`quantize` converts the image encoder and the one-word step to LiteRT; their loop runs in
Python (:class:`LiteCaptioner`). :func:`page` is a Gradio page that captions a photo.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from helpers.config import Settings
from helpers.data.images import inspect_image, open_rgb
from helpers.decoding import ALPHA, banned_ids, beam_candidates
from helpers.features import FEATURE_SIZE, IMAGE_SIZE, REGIONS, extract_features, folded_extractor, image_pipeline
from helpers.model import Bundle
from helpers.photos import fetch_photo
from helpers.system.errors import CourseError

NEG_INF = float("-inf")


def _pixels(data: tf.Tensor) -> tf.Tensor:
    """Encoded images -> ResNet50's inputs, as lesson 03's ``load_image`` (EXIF orientation is not read here)."""

    def one(encoded):
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        return keras.applications.resnet50.preprocess_input(tf.image.resize(image, IMAGE_SIZE, antialias=True))

    return tf.map_fn(one, data, fn_output_signature=tf.TensorSpec((*IMAGE_SIZE, 3), tf.float32))


def _encoder(bundle: Bundle) -> Callable:
    """A function from pixels to the features the bundle's captioner reads, with the folded float32 ResNet50."""
    model = folded_extractor(bundle.info["cnn_weights"])
    if bundle.feature_kind == "pooled":
        return lambda pixels: model(pixels, training=False)
    grid = keras.Model(model.input, model.get_layer("conv5_block3_out").output)
    # the course's grid features are stored float16: the same rounding here
    return lambda pixels: tf.cast(tf.cast(tf.reshape(grid(pixels), (-1, REGIONS, FEATURE_SIZE)), "float16"), "float32")


@tf.function  # AutoGraph turns the loop into a tf.while_loop
def greedy_ids(start, step, features, banned, start_id: int, end_id: int, steps: int) -> tf.Tensor:
    """:func:`helpers.decoding.greedy` as graph operations: the word ids of each image's caption, ``(n, steps)``."""
    context, h, c = start(features)
    tokens, ended = tf.fill([tf.shape(h)[0]], start_id), tf.zeros([tf.shape(h)[0]], tf.bool)
    ids = tf.TensorArray(tf.int32, size=steps, element_shape=[None])
    for t in tf.range(steps):
        probs, h, c = step(context, tokens, h, c)
        tokens = tf.where(ended, 0, tf.argmax(tf.math.log(probs) + banned, axis=1, output_type=tf.int32))
        ids, ended = ids.write(t, tokens), ended | (tokens == end_id)
        if tf.reduce_all(ended):
            break
    return tf.transpose(ids.stack())


@tf.function
def beam_ids(start, step, features, banned, start_id: int, end_id: int, steps: int, k: int) -> tf.Tensor:
    """:func:`helpers.decoding.beam_search` as graph operations, scores in float64 as there: ids ``(n, steps)``."""
    n, width, never = tf.shape(features)[0], min(k + 1, banned.shape[0]), tf.constant(NEG_INF, tf.float64)
    penalty = tf.constant([t**ALPHA for t in range(1, steps + 1)], tf.float64)  # Python's power, as the decoder's
    context, h, c = start(tf.repeat(features, k, axis=0))  # row i*k + j: beam j of image i
    tokens = tf.fill([n * k], start_id)
    scores = tf.concat([tf.zeros([n, 1], tf.float64), tf.fill([n, k - 1], never)], 1)
    history, best_ids = tf.zeros([n, k, steps], tf.int32), tf.zeros([n, steps], tf.int32)
    best, finished, length = tf.fill([n], never), tf.zeros([n], tf.int32), 0
    parent = tf.range(k * width) // width  # which beam each of the k*width candidates extends
    for t in tf.range(1, steps + 1):
        probs, h, c = step(context, tokens, h, c)
        top, words = tf.math.top_k(tf.math.log(probs) + banned, width)
        candidates = tf.reshape(scores[:, :, None] + tf.cast(tf.reshape(top, [n, k, width]), tf.float64), [n, -1])
        words = tf.reshape(words, [n, -1])
        ends = words == end_id
        rank = tf.argsort(tf.math.top_k(candidates, k * width).indices, axis=1)
        done = ends & (rank < k) & tf.math.is_finite(candidates)
        normalised = tf.where(done, candidates / penalty[t - 1], never)
        better, chosen = tf.reduce_max(normalised, 1) > best, tf.gather(parent, tf.argmax(normalised, 1))
        written = tf.gather(history, chosen, batch_dims=1) + tf.one_hot(t - 1, steps, dtype=tf.int32) * end_id
        best_ids = tf.where(better[:, None], written, best_ids)
        best = tf.maximum(best, tf.reduce_max(normalised, 1))
        finished += tf.reduce_sum(tf.cast(done, tf.int32), 1)
        scores, keep = tf.math.top_k(tf.where(ends, never, candidates), k)
        scores = tf.where((finished >= k)[:, None], never, scores)
        if tf.reduce_all(tf.math.is_inf(scores)):
            break
        beams = tf.gather(parent, keep)
        tokens = tf.gather(words, keep, batch_dims=1)
        history = (
            tf.gather(history, beams, batch_dims=1)
            + tf.one_hot(t - 1, steps, dtype=tf.int32)[None, None] * tokens[:, :, None]
        )
        rows = tf.reshape(tf.range(n)[:, None] * k + beams, [-1])
        h, c, tokens, length = tf.gather(h, rows), tf.gather(c, rows), tf.reshape(tokens, [-1]), t
    live = tf.where(tf.math.is_finite(scores), scores / penalty[tf.maximum(length, 1) - 1], never)
    better = tf.reduce_max(live, 1) > best  # live beams join after the finished ones: a tie keeps the finished
    return tf.where(better[:, None], tf.gather(history, tf.argmax(live, 1), batch_dims=1), best_ids)


def ids_to_text(ids: tf.Tensor, words: tf.Tensor, start_id: int, end_id: int) -> tf.Tensor:
    """``Vocabulary.decode`` as graph operations: up to ``endseq``, without padding and ``startseq``."""
    keep = (tf.cumsum(tf.cast(ids == end_id, tf.int32), axis=1) == 0) & (ids != 0) & (ids != start_id)
    return tf.strings.reduce_join(tf.ragged.boolean_mask(tf.gather(words, ids), keep), axis=1, separator=" ")


def export_savedmodel(bundle: Bundle, folder: str | Path, beam_width: int = 1) -> Path:
    """Write ``folder``: a SavedModel whose ``serve(images)`` captions encoded images, needing only TensorFlow.

    ``beam_width`` 1 searches greedily, more with beam search.
    """
    if beam_width < 1:
        raise CourseError(f"The beam width must be 1 (greedy) or more, got {beam_width}.")
    vocab, captioner = bundle.vocab, bundle.captioner
    encode = _encoder(bundle)
    start, step = captioner.decoder()
    banned, words, steps = tf.constant(banned_ids(captioner, vocab)), tf.constant(vocab.words), vocab.max_len - 1

    def serve(images):
        features, ends = encode(_pixels(images)), (vocab.start_id, vocab.end_id, steps)
        if beam_width == 1:
            ids = greedy_ids(start, step, features, banned, *ends)
        else:
            ids = beam_ids(start, step, features, banned, *ends, beam_width)
        return ids_to_text(ids, words, vocab.start_id, vocab.end_id)

    archive = keras.export.ExportArchive()  # no track(): the endpoint's graph keeps its weights, stored once
    archive.add_endpoint("serve", serve, [tf.TensorSpec([None], tf.string, name="images")])
    archive.write_out(str(folder), verbose=False)
    return Path(folder)


def quantize(bundle: Bundle, target: str | Path, weights: str = "int8", fold: bool = False) -> Path:
    """A LiteRT (TFLite) model of the image encoder and the one-word decoder, weights in int8 or float16 (lesson 12).

    int8 is dynamic-range quantization: weights stored in 8 bits, each layer's input rounded to 8 bits as it runs.
    Its signatures ``encode`` (pixels), ``start`` (features) and ``step`` serve :class:`LiteCaptioner`.
    ``fold=True`` lets the converter fold a batch norm into the Dense layer after it, as it does by default:
    in int8 that rounds many of the folded weights to 0 (lesson 12 measures it).
    """
    if weights not in ("int8", "float16"):
        raise CourseError(f"weights must be 'int8' or 'float16', got {weights!r}.")
    captioner = bundle.captioner
    encode = _encoder(bundle)
    start, step = captioner.decoder()
    row = tuple(captioner.sequence.get_layer("image").output.shape[1:])
    context, h, _ = start(tf.zeros((1, *row)))
    contexts = tf.nest.flatten(context)
    specs = [tf.TensorSpec([None, *x.shape[1:]], x.dtype, name=f"context_{i}") for i, x in enumerate(contexts)]
    specs += [tf.TensorSpec([None], tf.int32, name="tokens")]
    specs += [tf.TensorSpec([None, h.shape[1]], tf.float32, name=name) for name in "hc"]

    def one_word(*inputs):
        probs, h, c = step(tf.nest.pack_sequence_as(context, list(inputs[: len(contexts)])), *inputs[len(contexts) :])
        return {"probs": probs, "h": h, "c": c}

    archive = keras.export.ExportArchive()
    archive.add_endpoint("encode", encode, [tf.TensorSpec([None, *IMAGE_SIZE, 3], tf.float32, name="pixels")])
    archive.add_endpoint(
        "start", lambda f: _named(start(f)), [tf.TensorSpec([None, *row], tf.float32, name="features")]
    )
    archive.add_endpoint("step", one_word, specs)
    with tempfile.TemporaryDirectory() as parts:
        archive.write_out(parts, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(parts, signature_keys=["encode", "start", "step"])
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter._experimental_disable_fuse_mul_and_fc = not fold  # a private switch of TensorFlow's converter
        if weights == "float16":
            converter.target_spec.supported_types = [tf.float16]
        Path(target).write_bytes(converter.convert())
    return Path(target)


def _named(state: tuple) -> dict:
    """``(context, h, c)`` as the flat dictionary a SavedModel endpoint returns."""
    context, h, c = state
    return {f"context_{i}": x for i, x in enumerate(tf.nest.flatten(context))} | {"h": h, "c": c}


@dataclass
class LiteCaptioner:
    """A captioner whose encoder and one-word step run in LiteRT, offering the course's captioner interface (lesson 12).

    The course's decoders run its search loop in Python; ``sequence`` is the bundle's Keras model,
    read only for its sizes.
    """

    interpreter: object  # ai_edge_litert's Interpreter
    sequence: keras.Model
    architecture: str
    prefix = None

    def decoder(self) -> tuple[callable, callable]:
        """``(start, step)`` running the LiteRT signatures."""
        start, step = (self.interpreter.get_signature_runner(name) for name in ("start", "step"))

        def begin(features):
            out = start(features=np.asarray(features, np.float32))
            contexts = tuple(out[name] for name in sorted(out) if name.startswith("context_"))
            return (contexts[0] if len(contexts) == 1 else contexts), out["h"], out["c"]

        def one(context, tokens, h, c):
            contexts = {f"context_{i}": np.asarray(x) for i, x in enumerate(tf.nest.flatten(context))}
            out = step(**contexts, tokens=np.asarray(tokens, np.int32), h=np.asarray(h), c=np.asarray(c))
            return out["probs"], out["h"], out["c"]

        return begin, one

    def features(self, paths: list[Path], batch_size: int = 32) -> np.ndarray:
        """The LiteRT encoder's features of image files, decoded by lesson 03's pipeline (all must be readable)."""
        encode = self.interpreter.get_signature_runner("encode")
        turns = [inspect_image(path).orientation for path in paths]  # upright, as lesson 03's features
        rows = [
            next(iter(encode(pixels=batch.numpy()).values()))
            for _, batch in image_pipeline(paths, turns, batch_size=batch_size)
        ]
        return np.concatenate(rows)


def load_lite(path: str | Path, bundle: Bundle) -> LiteCaptioner:
    """The LiteRT model at ``path``, made from ``bundle`` by :func:`quantize`, as a captioner."""
    from ai_edge_litert.interpreter import Interpreter  # LiteRT's runtime: tf.lite.Interpreter is deprecated

    interpreter = Interpreter(model_path=str(path))
    return LiteCaptioner(interpreter, bundle.captioner.sequence, bundle.captioner.architecture)


# ---------------------------------------------------------------- the web page


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
        weight = np.kron(alpha.reshape(7, 7) / alpha.max(), np.ones((32, 32)))
        weight = np.pad(weight, ((0, 16), (0, 16)), mode="edge")[16:, 16:, None]  # where each window sits (lesson 11)
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
                beams = gr.Dataframe(headers=["caption", "score"], label="Every caption the beams finished, best first")
        maps = gr.Gallery(label="Where it looked, word by word", visible=bundle.feature_kind == "grid", columns=6)
        inputs = [upload, camera, address, beam_width]
        button.click(caption, inputs, [text, beams, maps, shown], api_name="caption", concurrency_limit=1)
    return demo
