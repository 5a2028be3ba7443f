"""helpers.data.shapes_dataset: the generated dataset is deterministic, in the Flickr8k layout, and its captions are true."""

from PIL import Image

from helpers.data import shapes_dataset as shapes
from helpers.data.flickr8k import SPLITS
from helpers.data.shapes_dataset import make_shapes
from helpers.datasets import read_flickr_layout


def test_shapes_is_deterministic_and_in_flickr_layout(tmp_path):
    a, b = make_shapes(tmp_path / "a"), make_shapes(tmp_path / "b")
    assert (a / "Flickr8k.token.txt").read_bytes() == (b / "Flickr8k.token.txt").read_bytes()
    first = sorted((a / "Flicker8k_Dataset").iterdir())[0].name
    assert (a / "Flicker8k_Dataset" / first).read_bytes() == (b / "Flicker8k_Dataset" / first).read_bytes()
    data = read_flickr_layout(a, "shapes")
    assert [len(data.images(s)) for s in SPLITS] == list(shapes.SHAPES_SPLIT.values())
    assert data.captions.groupby("image").size().eq(5).all()
    assert data.captions.groupby("image")["caption"].nunique().min() >= 4  # varied wording


def test_shapes_captions_describe_the_image(tmp_path):
    root = make_shapes(tmp_path / "s", split={"train": 30, "dev": 0, "test": 0})
    data = read_flickr_layout(root, "shapes")
    for image in data.images()[:30]:
        first = data.captions.loc[data.captions["image"] == image, "caption"].iloc[0].lower()
        background = next(name for name in shapes.BACKGROUNDS if f"{name} background" in first)
        with Image.open(data.image_path(image)) as picture:
            corner = picture.convert("RGB").getpixel((1, 1))
        expected = shapes.BACKGROUNDS[background]
        assert max(abs(c - e) for c, e in zip(corner, expected)) < 25, (image, first, corner)
        colour = next(name for name in shapes.COLOURS if f" {name} " in f" {first} ")
        with Image.open(data.image_path(image)) as picture:
            pixels = {colour for _, colour in picture.convert("RGB").quantize(16).convert("RGB").getcolors()}
        assert any(max(abs(c - e) for c, e in zip(p, shapes.COLOURS[colour])) < 40 for p in pixels), (image, first)


def test_shapes_regenerates_only_when_changed(tmp_path):
    root = make_shapes(tmp_path / "s", split={"train": 3, "dev": 1, "test": 1})
    stamp = (root / "Flickr8k.token.txt").stat().st_mtime_ns
    make_shapes(tmp_path / "s", split={"train": 3, "dev": 1, "test": 1})
    assert (root / "Flickr8k.token.txt").stat().st_mtime_ns == stamp
    make_shapes(tmp_path / "s", split={"train": 4, "dev": 1, "test": 1})
    assert len(list((root / "Flicker8k_Dataset").iterdir())) == 6
