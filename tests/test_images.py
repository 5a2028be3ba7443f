"""helpers.data.images: whole files recognised by their end marker, anything else decoded (test_datasets.py has a
learner's folder of broken files, test_features.py the odd images that stay)."""

from PIL import Image

from helpers.data import images


def test_the_quick_end_marker_check_and_its_fallback(tmp_path):
    """Whole files are recognised by their end marker; anything else is decoded, so odd but whole files stay."""
    photo = Image.linear_gradient("L").resize((64, 48)).convert("RGB")
    photo.save(tmp_path / "whole.jpg")
    (tmp_path / "tail.jpg").write_bytes((tmp_path / "whole.jpg").read_bytes() + b"camera data after the image")
    photo.save(tmp_path / "whole.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:-40])
    verdicts = {path.name: info.problem for path, info in images.check_images(sorted(tmp_path.iterdir())).items()}
    assert verdicts["whole.jpg"] is None and verdicts["tail.jpg"] is None and verdicts["whole.png"] is None
    assert verdicts["cut.png"] is not None
