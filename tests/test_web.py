"""The web demo served for real on 127.0.0.1: called through `gradio_client` and driven in Debian's Chromium."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
from pathlib import Path

import pytest

pytest.importorskip("gradio", reason="the web demo needs the `space` extra (gradio)")
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from videoitg import web
from videoitg.inference import FrameScorer, make_sample_video

REPO_ROOT = Path(__file__).resolve().parents[1]
INSTRUCTION = "When does the red circle appear?"
TOP_K = 6
CAPTION = re.compile(r"^(\d+\.\d) s · score (\d\.\d\d)$")
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def _serve(**options):
    """The app launched headless on a free local port; yields its URL."""
    port = _free_port()
    app = web.launch(host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True, **options)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()


def _caption_times(gallery) -> list[float]:
    times = []
    for item in gallery:
        match = CAPTION.match(item["caption"])
        assert match, f"caption {item['caption']!r} does not read '<time> s · score <score>'"
        times.append(float(match.group(1)))
    return times


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("web-samples")


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """40 s with a red circle at 10-14 s (the generated demo video)."""
    return make_sample_video(tmp_path_factory.mktemp("web-video") / "circle.mp4", seconds=40, fps=1, seed=5)


@pytest.fixture(scope="module")
def app_url(sample_dir):
    with _serve(sample_dir=sample_dir) as url:
        yield url


@pytest.fixture(scope="module")
def scorer():
    """The model the app uses by default (the embedded demo model, or the random tiny one without it)."""
    return FrameScorer.from_pretrained(None)


def test_client_gets_gallery_plot_and_selection(app_url, video, scorer, sample_dir):
    client = Client(app_url, verbose=False)
    selected, uniform, plot, downloads, note = client.predict(
        handle_file(str(video)), INSTRUCTION, TOP_K, "", api_name="/select"
    )
    expected = scorer.select(video, INSTRUCTION, top_k=TOP_K)

    assert len(selected) == TOP_K and all(Path(item["image"]).is_file() for item in selected)
    files = {Path(path).name: Path(path) for path in downloads}
    assert set(files) == {"selection.json", "frames.png"}
    record = json.loads(files["selection.json"].read_text())
    assert record["indices"] == expected["indices"]
    assert record["instruction"] == INSTRUCTION and len(record["scores"]) == len(expected["scores"]) == 40
    # The captions are the selected frames' times, in temporal order.
    assert _caption_times(selected) == pytest.approx([round(t, 1) for t in record["timestamps"]])

    # Uniform frames for comparison: as many, spread over the video, from the same decode (same scores).
    uniform_times = _caption_times(uniform)
    assert len(uniform) == TOP_K and uniform_times == sorted(uniform_times)
    assert uniform_times[0] < 10 and uniform_times[-1] > 30

    from PIL import Image

    with Image.open(plot) as picture:
        assert picture.format == "PNG" and picture.width >= 400 and picture.height >= 150
    assert scorer.name in note
    # The samples were generated for the Examples.
    assert sorted(path.name for path in sample_dir.glob("*.mp4")) == sorted(sample.name for sample in web.SAMPLES)


def test_over_limit_uploads_get_a_message(sample_dir, tmp_path, video_factory):
    short = make_sample_video(tmp_path / "short.mp4", seconds=20, fps=1, seed=1)
    large = make_sample_video(tmp_path / "long.mp4", seconds=90, fps=1, seed=2)
    small_size, large_size = short.stat().st_size, large.stat().st_size
    limit_bytes = (small_size + large_size) // 2
    # The large file is over the limit but under Gradio's own ceiling, so our handler is the one that answers.
    assert small_size < limit_bytes < large_size < web.UPLOAD_CEILING_FACTOR * limit_bytes
    with _serve(sample_dir=sample_dir, max_upload_mb=limit_bytes / 2**20, max_duration_s=15) as url:
        client = Client(url, verbose=False)
        assert client.config["max_file_size"] == pytest.approx(web.UPLOAD_CEILING_FACTOR * limit_bytes, abs=2)
        for path, expected in ((large, r"the video is \d+ KB; this demo takes videos up to \d+ KB"),
                               (short, r"the video lasts 20 s; this demo takes videos up to 15 s")):  # fmt: skip
            with pytest.raises(AppError) as raised:
                client.predict(handle_file(str(path)), INSTRUCTION, TOP_K, "", api_name="/select")
            assert re.fullmatch(expected, raised.value.message), raised.value.message
            assert "Traceback" not in raised.value.message
        # Bad input of other kinds gets its message too.
        within_limits = handle_file(str(video_factory(duration_s=4, fps=10)))
        with pytest.raises(AppError, match="the instruction is empty"):
            client.predict(within_limits, "   ", TOP_K, "", api_name="/select")
        for top_k, problem in ((0, "less than minimum value 1"), (web.MAX_TOP_K + 1, "greater than maximum value")):
            with pytest.raises(AppError, match=problem):
                client.predict(within_limits, INSTRUCTION, top_k, "", api_name="/select")
        with pytest.raises(AppError, match="no-such-model: no such model folder"):
            client.predict(within_limits, INSTRUCTION, TOP_K, "./no-such-model", api_name="/select")


@pytest.mark.slow
def test_answers_from_selected_and_uniform_frames(video, sample_dir, tmp_path, scorer, monkeypatch):
    from videoitg.answer import Answerer, build_tiny_answerer
    from videoitg.selection import uniform_indices

    answer_model = build_tiny_answerer("llava_onevision", tmp_path / "tiny-llava-onevision")
    received = []
    original = Answerer.answer

    def recording_answer(self, frames, timestamps, question, *args, **kwargs):
        received.append((frames.clone(), list(timestamps), question))
        return original(self, frames, timestamps, question, *args, **kwargs)

    monkeypatch.setattr(Answerer, "answer", recording_answer)
    with _serve(sample_dir=sample_dir, answer_model=str(answer_model)) as url:
        outputs = Client(url, verbose=False).predict(
            handle_file(str(video)), INSTRUCTION, TOP_K, "", api_name="/select"
        )
    _, uniform, _, downloads, _, answer_selected, answer_uniform = outputs
    assert isinstance(answer_selected, str) and isinstance(answer_uniform, str)
    record = json.loads(next(Path(path) for path in downloads if path.endswith("selection.json")).read_text())

    # The answering model got exactly the selected frames, then the uniform ones, in temporal order, from the
    # frames the selector decoded.
    sampled = scorer.load(video)
    uniform_positions = uniform_indices(len(sampled.frames), TOP_K)
    assert _caption_times(uniform) == [sampled.timestamps[p] for p in uniform_positions]
    assert [question for _, _, question in received] == [INSTRUCTION, INSTRUCTION]
    for (frames, timestamps, _), positions in zip(received, (record["indices"], uniform_positions)):
        assert timestamps == [record["sampled_timestamps"][p] for p in positions] and timestamps == sorted(timestamps)
        assert frames.equal(sampled.frames[positions])


def _chromium_driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)  # with both paths given, selenium-manager has nothing to download
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,2000",
                     "--force-device-scale-factor=1"):  # fmt: skip
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


@pytest.mark.slow
@pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="Debian's chromium and chromium-driver are not installed (`make browser-deps` installs them as root)",
)
def test_browser_upload_select_and_screenshot(app_url, video, tmp_path, monkeypatch):
    pytest.importorskip("selenium", reason="the browser test needs selenium (dev extra)")
    from PIL import Image, ImageStat
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium-manager must never reach the network
    top_k = web.DEFAULT_TOP_K  # the slider is left as it is
    driver = _chromium_driver()
    try:
        wait = WebDriverWait(driver, 120)
        driver.get(app_url)
        upload = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#video input[type=file]")))
        upload.send_keys(str(video))
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#video video")))  # the upload has landed
        driver.find_element(By.CSS_SELECTOR, "#instruction textarea").send_keys(INSTRUCTION)
        driver.find_element(By.CSS_SELECTOR, "#select-button").click()

        def loaded_images(selector):
            images = driver.find_elements(By.CSS_SELECTOR, f"{selector} img")
            loaded = [image for image in images if image.is_displayed() and driver.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth > 0", image)]  # fmt: skip
            return loaded if len(loaded) >= top_k else False

        selected = wait.until(lambda _: loaded_images("#selected-frames"))
        wait.until(lambda _: loaded_images("#uniform-frames"))
        gallery = driver.find_element(By.CSS_SELECTOR, "#selected-frames")
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", gallery)
        screenshot = tmp_path / "web-demo.png"
        assert driver.save_screenshot(str(screenshot))
        assert len(selected) == top_k
        assert all(image.size["width"] > 0 and image.size["height"] > 0 for image in selected)
        rect = driver.execute_script("const r = arguments[0].getBoundingClientRect(); "
                                     "return [r.left, r.top, r.right, r.bottom];", gallery)  # fmt: skip
        captions = gallery.text
    finally:
        driver.quit()
    out = REPO_ROOT / "out" / "web-demo.png"
    out.parent.mkdir(exist_ok=True)
    shutil.copyfile(screenshot, out)

    with Image.open(screenshot) as picture:
        assert picture.width >= 1000 and picture.height >= 1000
        # The gallery is on screen in the picture: its area holds the frames, not a blank panel.
        left, top, right, bottom = (round(value) for value in rect)
        assert 0 <= top < picture.height and bottom - top > 100 and right - left > 300
        area = picture.convert("RGB").crop((left, top, right, min(bottom, picture.height)))
        assert max(ImageStat.Stat(area).stddev) > 20
        assert len(area.getcolors(maxcolors=1 << 20)) > 200
    # Each selected frame is captioned with its time and score.
    assert len(re.findall(r"\d+\.\d s · score \d\.\d\d", captions)) == top_k


def test_model_cache_keeps_the_default_and_the_recent_models(monkeypatch):
    from videoitg.video import InvalidInputError

    loads = []

    def fake_from_pretrained(name):
        if name == "broken/repo":
            raise OSError("broken/repo is not a valid model identifier")
        loads.append(name)
        return object()

    monkeypatch.setattr(FrameScorer, "from_pretrained", staticmethod(fake_from_pretrained))
    cache = web._ScorerCache(default="")
    default = cache.get("")[0]
    first = cache.get("org/first")[0]
    assert cache.get("org/first")[0] is first and loads == [None, "org/first"]
    # KEPT_MODELS - 1 more models: now one too many, and the least recently used one that is not the default goes.
    later = [f"org/later-{number}" for number in range(web.KEPT_MODELS - 1)]
    newest = [cache.get(name)[0] for name in later][-1]
    assert cache.get("")[0] is default and cache.get(later[-1])[0] is newest
    assert loads == [None, "org/first", *later]
    assert cache.get("org/first")[0] is not first and loads[-1] == "org/first"
    with pytest.raises(InvalidInputError, match="cannot load the model 'broken/repo': broken/repo is not a valid"):
        cache.get("broken/repo")


def test_cli_demo_web_launches_the_app(monkeypatch):
    from videoitg.cli import main

    launched = {}
    monkeypatch.setattr(web, "launch", lambda **options: launched.update(options))
    assert main(["demo", "--web", "--port", "7999", "--top-k", "5", "--answer-model", "some/answerer"]) == 0
    assert launched == {"host": None, "port": 7999, "model": None, "answer_model": "some/answerer", "default_top_k": 5}


def test_space_files():
    """The Space card's YAML, its system packages and its pinned package match this repository."""
    import tomllib

    import gradio
    import yaml

    space = REPO_ROOT / "space"
    card = (space / "README.md").read_text(encoding="utf-8")
    front_matter = yaml.safe_load(card.split("---\n")[1])
    assert front_matter["sdk"] == "gradio" and front_matter["python_version"] == "3.12"
    assert front_matter["sdk_version"] == gradio.__version__ and (space / front_matter["app_file"]).is_file()
    assert len(front_matter["short_description"]) <= 60  # the Hub refuses longer ones
    assert "ffmpeg" in (space / "packages.txt").read_text().split()
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    requirements = [line for line in (space / "requirements.txt").read_text().splitlines()
                    if line and not line.startswith(("#", "--"))]  # fmt: skip
    assert requirements == [f"videoitg[space]=={version}"]
    assert "from videoitg.web import launch" in (space / "app.py").read_text()
