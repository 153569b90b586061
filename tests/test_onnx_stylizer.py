"""The stylizer without PyTorch (pipeline/onnx_stylizer.py): once a node has exported a network,
CPU workers run it from the export without importing torch, and give the frames the full
stylizer gives, bit for bit; what needs torch (tiles, no export yet, other engines) still gets
the full one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from framestyle.core import node_cache
from framestyle.models.hub import resolve
from framestyle.models.transformer_net import TransformerNet
from framestyle.pipeline import onnx_stylizer
from framestyle.pipeline.inference import InferenceOptions
from framestyle.pipeline.memory import SharedBudget
from framestyle.pipeline.onnx_stylizer import OnnxStylizer, make_stylizer
from framestyle.pipeline.style_image import resolve_style
from framestyle.pipeline.stylize import Stylizer
from helpers import seeded
from media import decoded_frames

FRAMES = [np.random.default_rng(i).integers(0, 256, (45, 70, 3), dtype=np.uint8)
          for i in range(3)]  # odd sizes: padded to the network's multiple and cropped back
# the start of a child process's script that measures its own memory (Linux's counters)
MEMORY_PROBE = """
import numpy as np
from framestyle.models.hub import resolve

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
"""
# run in a child process: any import of torch fails there
WITHOUT_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch imported")
sys.meta_path.insert(0, NoTorch())
"""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(node_cache.ROOT_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_after_the_first_stylizer_the_next_needs_no_torch_and_gives_the_same_frames(
        cache, tmp_path):
    checkpoint = tmp_path / "tn.pth"
    torch.save(seeded(TransformerNet(width=0.25), scale=0.05).state_dict(), checkpoint)
    for text in ("builtin:3=0.5,12=0.5", str(checkpoint)):
        style = resolve(text)
        first = make_stylizer(style)  # nothing exported on this node yet: the full one
        assert isinstance(first, Stylizer) and first.engine == "onnxruntime"
        expected = first(FRAMES)
        later = make_stylizer(style)
        assert isinstance(later, OnnxStylizer)
        assert later.bytes_per_pixel == first.bytes_per_pixel  # recorded in the export
        got = later(FRAMES)
        assert [g.shape for g in got] == [(45, 70, 3)] * 3
        assert all(np.array_equal(g, e) for g, e in zip(got, expected))
        assert np.abs(np.stack(got).astype(int) - np.stack(FRAMES)).mean() > 5  # painted
    # a restyle between built-in mixes, and the look, as the full stylizer does them
    mix = resolve("builtin:3=0.5,12=0.5")
    full, light = Stylizer(mix), make_stylizer(mix)
    for stylizer in (full, light):
        stylizer.restyle(resolve("builtin:20"))
    assert all(np.array_equal(a, b) for a, b in zip(full(FRAMES), light(FRAMES)))
    soft = resolve_style("builtin:20", strength=0.5, preserve_color=True)
    assert all(np.array_equal(a, b) for a, b in zip(Stylizer(soft)(FRAMES),
                                                    make_stylizer(soft)(FRAMES)))


def test_frames_over_the_budget_go_to_a_full_stylizer_in_tiles(cache):
    style = resolve("builtin:1")
    Stylizer(style)  # the export
    budget = InferenceOptions(memory_budget=60 * 2**20)  # ~110k pixels whole: 300x300 tiles
    light, full = make_stylizer(style, budget), Stylizer(style, budget)
    assert isinstance(light, OnnxStylizer)
    big = np.kron(FRAMES[0][:6, :6], np.ones((80, 80, 1), np.uint8))  # 480x480
    assert np.array_equal(light([big])[0], full([big])[0])
    assert light.tiled_frames == full.tiled_frames == 1
    assert np.array_equal(light(FRAMES[:1])[0], full(FRAMES[:1])[0])  # small ones: its own


def test_stylizers_sharing_a_process_run_a_large_frame_whole_one_at_a_time(cache):
    """Stylizers on threads of one process (``InferenceOptions.sharing_process``) size their
    passes to their share, but a frame over the share and within the whole process's budget
    runs untiled (tiles cost many times the time) while the other waits; small frames run side
    by side; only a frame over the whole budget goes in tiles."""
    style = resolve("builtin:1")
    Stylizer(style)  # the export
    shared = InferenceOptions(memory_budget=60 * 2**20, replicas_sharing=2)  # 120 MiB in all
    replicas = [make_stylizer(style, shared) for _ in range(2)]
    assert all(isinstance(r, OnnxStylizer) for r in replicas)
    assert replicas[0].shared is replicas[1].shared and replicas[0].shared.total == 120 * 2**20
    large = np.kron(FRAMES[1][:4, :4], np.ones((100, 100, 1), np.uint8))  # 400x400: 1.4 shares
    assert 60 * 2**20 < large.size // 3 * replicas[0].bytes_per_pixel < 120 * 2**20
    meeting = threading.Barrier(2, timeout=20)
    running, most = [0], [0]
    lock = threading.Lock()

    def counted(replica, meet: bool):
        def run(frames):
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            try:
                if meet:  # both passes at once, or a broken barrier
                    meeting.wait()
                return OnnxStylizer.stylize_pass(replica, frames)
            finally:
                with lock:
                    running[0] -= 1
        return run

    def both(frames, meet: bool) -> list:
        for r in replicas:
            r.stylize_pass = counted(r, meet)
        with ThreadPoolExecutor(2) as pool:
            return list(pool.map(lambda r: r([frames])[0], replicas))

    expected = make_stylizer(style)([large])[0]  # this machine's budget: whole
    outputs = both(large, meet=False)
    assert most[0] == 1  # one at a time: two would not fit
    assert all(np.array_equal(out, expected) for out in outputs)
    assert [r.tiled_frames for r in replicas] == [0, 0]
    most[0] = 0
    both(FRAMES[0], meet=True)  # small: side by side (the barrier needs both in their pass)
    assert most[0] == 2
    beyond = np.kron(FRAMES[1][:4, :4], np.ones((120, 160, 1), np.uint8))  # 480x640: 2.4 shares
    for r in replicas:
        del r.stylize_pass
    assert np.array_equal(replicas[0]([beyond])[0], make_stylizer(style, shared)([beyond])[0])
    assert replicas[0].tiled_frames == 1


def test_a_shared_budget_lets_passes_in_in_the_order_they_asked():
    """A large pass waiting for room is not overtaken by small ones that would fit beside the
    pass that holds the budget: it goes next, and the small one runs beside it if it fits."""
    budget = SharedBudget(100)
    order, started = [], threading.Event()
    release_first = threading.Event()

    def hold(name: str, nbytes: int, until: threading.Event | None = None) -> None:
        with budget.hold(nbytes):
            order.append(name)
            started.set()
            if until is not None:
                until.wait(10)

    first = threading.Thread(target=hold, args=("first", 60, release_first))
    first.start()
    assert started.wait(10)
    large = threading.Thread(target=hold, args=("large", 60))
    large.start()
    while len(budget._queue) < 1:  # the large one is in line
        time.sleep(0.01)
    small = threading.Thread(target=hold, args=("small", 30))
    small.start()
    while len(budget._queue) < 2:  # and the small one behind it, though 40 are free
        time.sleep(0.01)
    assert order == ["first"]
    release_first.set()
    for t in (first, large, small):
        t.join(10)
    assert order == ["first", "large", "small"] and budget._free == 100
    with budget.hold(10**9):  # more than the whole: the whole, not a wait for ever
        assert budget._free == 0


def test_a_session_holds_a_frames_memory_once_not_twice(cache):
    """onnxruntime's memory pattern, planned on a shape's first run, added a second block of all
    the intermediate tensors on the next: a session held twice what a frame needs (8.7 GB for a
    12 MP photo), more than the budget counts on. Off, the peak stays put from run to run."""
    style = resolve("builtin:1")
    Stylizer(style)  # the export, for the child process
    code = MEMORY_PROBE + """
from framestyle.pipeline.onnx_stylizer import make_stylizer

stylizer = make_stylizer(resolve("builtin:1"))
frame = np.random.default_rng(0).integers(0, 256, (1080, 1440, 3), np.uint8)
stylizer([frame[:64, :64]])
base = status("VmHWM")
peaks = []
for _ in range(3):
    stylizer([frame])
    peaks.append(status("VmHWM"))
print(base, *peaks)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=os.environ.copy())
    assert done.returncode == 0, done.stderr[-2000:]
    base, *peaks = map(int, done.stdout.split())
    first = peaks[0] - base
    assert first > 200 * 2**20  # the frame's tensors: hundreds of MB at 1.6 MP
    assert peaks[-1] - peaks[0] < 0.1 * first, (base, peaks)


def test_a_frame_run_on_memory_borrowed_from_the_others_gives_it_back(cache):
    """onnxruntime's arena keeps what a run took. A stylizer sharing a process's budget that ran
    a frame over its own share (on memory the others left it) would keep it, and every
    stylizer of a many-core machine doing so would hold several times what they share: such a
    pass releases its memory when it ends; a pass within the share keeps its arena warm."""
    style = resolve("builtin:1")
    Stylizer(style)  # the export, for the child process
    code = MEMORY_PROBE + """
from framestyle.pipeline.inference import InferenceOptions
from framestyle.pipeline.onnx_stylizer import make_stylizer

shared = InferenceOptions(memory_budget=600 * 2**20, replicas_sharing=2)
for size in ((720, 960), (1080, 1440)):  # within its share, then over it
    stylizer = make_stylizer(resolve("builtin:1"), shared)
    frame = np.random.default_rng(0).integers(0, 256, (*size, 3), np.uint8)
    stylizer([frame[:64, :64]])
    base = status("VmRSS")
    open("/proc/self/clear_refs", "w").write("5")
    stylizer([frame])
    print(size[0] * size[1] * stylizer.bytes_per_pixel > 600 * 2**20, stylizer.tiled_frames,
          status("VmHWM") - base, status("VmRSS") - base)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=os.environ.copy())
    assert done.returncode == 0, done.stderr[-2000:]
    (within, kept), (over, given_back) = [(line.split()[:2], list(map(int, line.split()[2:])))
                                          for line in done.stdout.splitlines()]
    assert within == ["False", "0"] and over == ["True", "0"]  # both whole, the second borrowed
    assert kept[0] > 100 * 2**20 and kept[1] > 0.5 * kept[0]  # the arena keeps its memory
    assert given_back[0] > 200 * 2**20 and given_back[1] < 0.25 * given_back[0], given_back


def test_what_needs_torch_gets_the_full_stylizer(cache, monkeypatch):
    style = resolve("builtin:2")
    Stylizer(style)
    for options in (InferenceOptions(engine="torch"), InferenceOptions(compile=True),
                    InferenceOptions(max_tile=256), InferenceOptions(dtype="bf16")):
        assert isinstance(make_stylizer(style, options), Stylizer)
    # a GPU's device file: torch decides (there is no GPU here: a CPU stylizer, the light one)
    monkeypatch.setattr(onnx_stylizer, "GPU_DEVICE_FILES", (__file__,))
    monkeypatch.setattr("framestyle.pipeline.stylize.pick_device",
                        lambda: torch.device("cuda"))
    assert onnx_stylizer.device_type() == "cuda"
    assert not onnx_stylizer.runs_without_torch(style, InferenceOptions())


def _run_cli(argv: list[str], env: dict, without_torch: bool) -> dict:
    """The CLI in a process of its own (any import of torch failing if ``without_torch``)."""
    script = (WITHOUT_TORCH if without_torch else "") + (
        "from framestyle.jobs.cli import main\nsys.argv = ['framestyle'] + sys.argv[1:]\nmain()\n")
    done = subprocess.run([sys.executable, "-c", "import sys\n" + script, *argv, "--json"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_jobs_on_a_node_with_the_export_never_import_torch(clips, tmp_path):
    """Two runs of a video job in the process and of an animated image, each in its own
    process with the node cache shared: the first exports the network (with torch), the second
    runs with every import of torch failing, and writes the same frames."""
    from PIL import Image

    env = {**os.environ, node_cache.ROOT_ENV: str(tmp_path / "cache"), "RAY_ADDRESS": ""}
    videos = []
    for run in range(2):
        out = tmp_path / f"run{run}.mp4"
        summary = _run_cli(["video", str(clips["bunny"]), str(out), "--style", "builtin:7",
                            "--chunk-seconds", "0.5", "--executor", "process"], env, run == 1)
        assert summary["status"] == "done" and summary["frames_out"] == 50
        videos.append(decoded_frames(out))
    assert len(videos[1]) == 50 and all(np.array_equal(a, b) for a, b in zip(*videos))
    # an animation: stylized, then blended along its motion, torch-free too
    gif = tmp_path / "moving.gif"
    frames = [Image.fromarray(np.roll(FRAMES[0][:40, :60], 3 * i, axis=1)) for i in range(4)]
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    images = []
    for run in range(2):
        out = tmp_path / f"run{run}.gif"
        _run_cli(["image", str(gif), str(out), "--style", "builtin:7"], env, run == 1)
        with Image.open(out) as animation:
            images.append([np.asarray(f.convert("RGB")).copy() for f in _frames(animation)])
    assert len(images[1]) == 4 and all(np.array_equal(a, b) for a, b in zip(*images))


def _frames(animation):
    for i in range(animation.n_frames):
        animation.seek(i)
        yield animation
