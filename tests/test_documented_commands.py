"""Every command of the README and docs/*.md runs as written (issue 13, acceptance).

The commands are the lines of the ``bash`` code blocks (``\\`` continuations joined, comments dropped).
Each is in one reviewed list below: ``RUN`` (run here, in this order, on the tiny kit), ``COVERED`` (run on
the tiny kit by the named test, too slow to repeat here) or ``NOT_OFFLINE`` (real models, GPUs, a cluster
or the network; the reason given). A usage synopsis (``[--option ...]``, ``a | b``) is not a command.
``RUN`` commands go through the substitution table of the README ("Every documented command is tested")
and run in a temporary copy of ``configs/`` (sentence files cut to 3 lines), W&B and the hub offline.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

TRAIN = "python -m speakimg.data.build --texts configs/data/train_sentences.txt --out data/speech"
EVAL_TINY = (
    "python -m speakimg.evaluate --config configs/eval.yaml --image_model /tmp/tiny/stable-diffusion "
    "--audio_model /tmp/tiny/auffusion --whisper /tmp/tiny/whisper/tiny-whisper.pt --clip /tmp/tiny/clip "
    "--limit_image_prompts 2 --limit_audio_prompts 2 --steps 2 --device cpu --out /tmp/eval-tiny"
)
RUN = [  # in this order: later ones read what earlier ones wrote
    f"{TRAIN} --workers 16",
    TRAIN,  # the rerun resumes: nothing to build
    "python -m speakimg.data.verify data/speech",
    "python -m speakimg.data.verify data/speech --repair",
    "python -m speakimg.data.report data/speech --whisper small.en",
    "python -m speakimg.data.latents data/speech --vae runwayml/stable-diffusion-v1-5 --device cuda",
    "python -m speakimg.vocoder.prepare_mels data/speech --vae auffusion/auffusion-full-no-adapter",
    "python -m speakimg.vocoder.prepare_mels DATA_DIR --vae auffusion/auffusion-full-no-adapter",
    "python -m speakimg.data.build --texts configs/data/test_sentences.txt --out data/quickstart",
    "python -m speakimg.data.build --texts configs/data/train_sentences.txt --out data/speech2 --tts festival,espeak",
    "python -m speakimg.testing --out /tmp/tiny",  # then EVAL_TINY's model paths must exist (below)
    "python -m speakimg.evaluate --config configs/eval.yaml --print_config",
    "python -m speakimg.evaluate --help",
]
SPEECH_FIT = "tests/test_speech_fit.py::test_quickstart_trains_and_reruns_in_the_same_folder"
COVERED = {
    EVAL_TINY: "tests/test_evaluate.py (the same tiny evaluation; minutes on 2 cores, so only its paths are checked here)",
    "bash scripts/setup.sh && .venv/bin/python -m pytest": "tests/ (the whole suite; .ci/run)",
    "bash scripts/setup.sh && .venv/bin/python -m speakimg.demo": "tests/test_demo.py",
    "python -m speakimg.fit --config configs/auffusion_lora.yaml --config configs/quickstart_speech.yaml": SPEECH_FIT,
    "python -m speakimg.fit --config configs/hifigan_scratch.yaml --config configs/quickstart_vocoder.yaml": (
        "tests/test_training_config.py"
    ),
    "python -m speakimg.export outputs/quickstart_speech/checkpoints/last.ckpt "
    "outputs/quickstart_speech/speech-model": "tests/test_fit_checkpoints.py",
    "python -m speakimg.sample --grid image_prompts.txt audio_prompts.txt --out outputs/grid --n 2": (
        "tests/test_sample_cli.py::test_grid_samples_every_pair_uncropped"
    ),
    "python -m speakimg.sample --from-json outputs/samples/<pair>/0/sample.json --out outputs/again": (
        "tests/test_sample_cli.py::test_regenerating_from_the_json_gives_the_same_latents"
    ),
    "python -m speakimg.sample --method imprint --image-prompt ... --audio-prompt ... --out outputs/imprint": (
        "tests/test_sample_cli.py::test_imprint_method"
    ),
}
REAL = "the real models (SD 1.5, Auffusion, a trained speech model or vocoder): no weights offline"
CLUSTER = "several GPUs or nodes (DDP on CPU: tests/test_speech_fit.py, tests/test_data_datamodule.py)"
NOT_OFFLINE = {
    "python -m speakimg.fit --config configs/auffusion_lora.yaml": REAL,
    "python -m speakimg.fit --config configs/auffusion_lora.yaml --ckpt_path last": REAL,
    "python -m speakimg.fit --config configs/auffusion_lora.yaml --trainer.devices 8 --trainer.strategy ddp": CLUSTER,
    "python -m speakimg.fit --config configs/hifigan.yaml": REAL,
    "python -m speakimg.fit --config configs/hifigan.yaml --data.init_args.data_dir DATA_DIR": REAL,
    "python -m speakimg.fit --config configs/hifigan.yaml --data.init_args.data_dir DATA_DIR --ckpt_path last": REAL,
    "python -m speakimg.fit --config configs/hifigan.yaml ... --trainer.devices 8 --trainer.num_nodes 2": CLUSTER,
    "python -m speakimg.fit --config configs/hifigan_scratch.yaml --data.init_args.data_dir DATA_DIR": (
        "a full from-scratch vocoder run (hours); its tiny overlay is covered"
    ),
    "python -m speakimg.export outputs/auffusion_lora/checkpoints/last.ckpt outputs/speech-model": REAL,
    "python -m speakimg.vocoder.export outputs/hifigan/checkpoints/last.ckpt outputs/vocoder": REAL,
    "python -c from speakimg.vocoder import load_vocoder; print(load_vocoder('outputs/vocoder'))": REAL,
    "python -m speakimg.sample --image-prompt a painting of castle towers, grayscale --audio-prompt The quick "
    "brown fox jumps over the lazy dog. --audio-model outputs/speech-model --vocoder outputs/vocoder "
    "--out outputs/samples --n 4": REAL,
    "python -m speakimg.sample --image-prompt a painting of a lighthouse, grayscale --audio-prompt The sea was "
    "calm and the night was clear. --audio-model path/to/speech-model --out outputs/samples --n 4 --seed 0 "
    "--steps 100": REAL,
    "python -m speakimg.evaluate --config configs/eval.yaml": REAL,
    "python -m speakimg.evaluate --config configs/eval.yaml --audio_model outputs/speech-model": REAL,
    "python -m speakimg.evaluate --config configs/eval.yaml --audio_model outputs/speech-model "
    "--limit_image_prompts 2 --limit_audio_prompts 2 --steps 20 --out outputs/eval/quick": REAL,
    "python -m speakimg.evaluate --config configs/eval_its.yaml": REAL,
    "python -m speakimg.data.build --texts sentences.txt --out /shared/speech --shard ${SLURM_ARRAY_TASK_ID}/16": (
        "a SLURM array (sharded builds: tests/test_data_build.py)"
    ),
    "jid=$(sbatch --parsable build.sbatch)": "SLURM",
    "sbatch --dependency=afterok:$jid --wrap python -m speakimg.data.build --merge --out /shared/speech": "SLURM",
    "srun python -m speakimg.fit --config configs/auffusion_lora.yaml --trainer.strategy ddp --trainer.devices 8 "
    "--trainer.num_nodes 2": CLUSTER,
    "torchrun --nnodes 2 --nproc-per-node 8 --node-rank $NODE_RANK --rdzv-backend c10d --rdzv-endpoint "
    "$MASTER_ADDR:29500 -m speakimg.fit --config configs/auffusion_lora.yaml --trainer.strategy ddp "
    "--trainer.devices 8 --trainer.num_nodes 2": CLUSTER,
    "python -m speakimg.app": REAL + " (the tiny studio: tests/test_app.py)",
    "python -m speakimg.app --audio-model auffusion/auffusion-full-no-adapter": REAL + " (tests/test_app.py)",
    "python -m speakimg.app --audio-model outputs/speech-model --device cuda --port 7860": REAL,
    "python -m speakimg.app --audio-model outputs/speech-model --vocoder outputs/vocoder --device cuda": REAL,
    "ssh -N -L 7860:localhost:7860 -J you@login.cluster.example you@gpu-node-17": "a cluster (an SSH tunnel)",
    "python -m speakimg.evaluate --config configs/eval.yaml --methods [imprint, controlnet, reference]": (
        REAL + " (tiny: tests/test_sampling_methods.py)"
    ),
    "python -m speakimg.sample --colorize true --pixel-model DeepFloyd/IF-I-M-v1.0 ... --out outputs/colour": (
        REAL + " (tiny: tests/test_sampling_sds.py)"
    ),
    "python -m speakimg.sample --image-prompt ... --audio-prompt ... --n 20 --keep 2 --rank clip,wer "
    "--out outputs/best": REAL + " (tiny: tests/test_sampling_methods.py)",
    "python -m speakimg.sample --method controlnet --tts espeak --image-prompt ... --audio-prompt ... "
    "--out outputs/cn": REAL + " (tiny: tests/test_sampling_methods.py)",
    "python -m speakimg.sample --method reference --reference-weight 0.3 --image-prompt ... --audio-prompt ... "
    "--out outputs/ref": REAL + " (tiny: tests/test_sampling_methods.py)",
    "python -m speakimg.sample --method sds --pixel-model DeepFloyd/IF-I-M-v1.0 --image-prompt a painting of "
    "castle towers, grayscale --audio-prompt bells ringing --out outputs/sds": REAL
    + " (tiny: tests/test_sampling_sds.py)",
    "python -m speakimg.sample --method sds --pixel-model DeepFloyd/IF-I-M-v1.0 ... --out outputs/sds": (
        REAL + " (tiny: tests/test_sampling_sds.py)"
    ),
    "export HF_HUB_OFFLINE=1": "a shell setting for the real models' offline use (the tests set it themselves)",
    "python -m speakimg.evaluate --config configs/eval.yaml --audio_model outputs/speech-model --out "
    "outputs/eval/sweep --references false --sweep {t_image: [0.8, 0.9, 1.0], audio_weight: [0.3, 0.5, 0.7]}": (
        REAL + " (tiny sweep: tests/test_evaluate_scale.py)"
    ),
    "python -m speakimg.evaluate --config configs/eval.yaml --out outputs/eval/sweep --sweep {t_image: [0.8, "
    "0.9], audio_weight: [0.3, 0.5]}": REAL + " (tiny sweep: tests/test_evaluate_scale.py)",
    "python benchmarks/fit_intelligibility.py --methods native,atempo,phase-vocoder --workers 2": (
        "a benchmark (about 10 minutes of TTS and Whisper on 2 cores); figures in benchmarks/RESULTS.md"
    ),
    "srun --kill-on-bad-exit=1 python -m speakimg.evaluate --config configs/eval.yaml --audio_model "
    "outputs/speech-model --out outputs/eval/speech": CLUSTER + " (2 ranks on CPU: tests/test_evaluate_scale.py)",
    "torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint $HEAD_NODE:29500 -m "
    "speakimg.evaluate --config configs/eval.yaml --audio_model outputs/speech-model": CLUSTER,
    "torchrun --standalone --nproc-per-node 8 -m speakimg.evaluate --config configs/eval.yaml": CLUSTER,
    "torchrun --standalone --nproc-per-node 8 -m speakimg.evaluate --config configs/eval.yaml --audio_model "
    "outputs/speech-model --out outputs/eval/speech": CLUSTER,
    "torchrun --standalone --nproc-per-node 8 -m speakimg.sample --grid configs/data/image_prompts.txt "
    "configs/data/test_sentences.txt --audio_model outputs/speech-model --out outputs/grid --no_video": CLUSTER,
    "wandb login": "the network (W&B online)",
    "wandb sync OUT/wandb/offline-run-*": "the network (W&B online)",
}

NOT_OFFLINE_PREFIXES = {"hf download ": "the network (downloads from the Hugging Face hub)"}


def documented_commands() -> dict[str, list[str]]:
    """``{command: [files that show it]}``: the lines of every ``bash`` block, normalised."""
    found: dict[str, list[str]] = {}
    for path in DOCS:
        text = path.read_text("utf-8")
        for block in re.finditer(r"^```(?:bash|sh|shell)\n(.*?)^```", text, re.S | re.M):
            for line in re.sub(r"\\\n", " ", block.group(1)).splitlines():
                tokens = shlex.split(line, comments=True)
                command = " ".join(tokens)
                if tokens and not re.search(r"\[--|\s\|\s", command):  # a usage synopsis is no command
                    found.setdefault(command, []).append(path.name)
    return found


def substitutions() -> list[tuple[str, str]]:
    """The README's substitution table: ``(documented, run with)`` pairs."""
    text = (REPO / "README.md").read_text("utf-8")
    section = text[text.index("**Every documented command is tested**") :]
    return re.findall(r"^\s*\| `([^`]+)` \| `([^`]+)`[^|\n]*\|", section, re.M)[:20]


def test_every_documented_command_is_classified():
    found = documented_commands()
    listed = [*RUN, *COVERED, *NOT_OFFLINE]
    unclassified = sorted(c for c in set(found) - set(listed) if not c.startswith(tuple(NOT_OFFLINE_PREFIXES)))
    assert not unclassified, (
        f"documented commands not in a list of {Path(__file__).name} (RUN, COVERED or NOT_OFFLINE): {unclassified}"
    )
    stale = sorted(set(listed) - set(found))
    assert not stale, f"listed commands no longer in the docs: {stale}"
    assert len(listed) == len(set(listed)), "a command is in two lists"
    for where in COVERED.values():
        assert (REPO / where.split("::")[0].split(" ")[0]).exists(), where
    assert ("small.en", "tiny:whisper --samples 1 --gl-iters 4") in substitutions() and len(substitutions()) >= 7


def test_the_quickstart_configs_read_what_the_documented_build_writes():
    """Issue 13 item 4: the quickstart configs expect the folders that the documented commands build."""
    outs = {c.split("--out ")[1].split()[0] for c in documented_commands() if "speakimg.data.build" in c}
    for name in ("quickstart_speech.yaml", "quickstart_vocoder.yaml"):
        data = yaml.safe_load((REPO / "configs" / name).read_text())["data"]["init_args"]
        assert data["data_dir"] in outs, (
            f"configs/{name}: data_dir {data['data_dir']} is built by no documented command"
        )


def test_the_classifier_rejects_a_new_command(tmp_path, monkeypatch):
    """A deliberately undocumented command makes the classification fail."""
    readme = tmp_path / "README.md"
    readme.write_text("```bash\npython -m speakimg.sample --new-flag  # new\n```\n", "utf-8")
    monkeypatch.setattr(sys.modules[__name__], "DOCS", [REPO / "README.md", *DOCS[1:], readme])
    assert "python -m speakimg.sample --new-flag" in documented_commands()
    with pytest.raises(AssertionError, match="new-flag"):
        test_every_documented_command_is_classified()


@pytest.mark.slow
def test_the_offline_documented_commands_run_as_written(tmp_path, tiny_root):
    work = tmp_path / "clone"
    shutil.copytree(REPO / "configs", work / "configs")
    for sentences in (work / "configs" / "data").glob("*_sentences.txt"):
        lines = [line for line in sentences.read_text("utf-8").splitlines() if line.strip()][:3]
        sentences.write_text("\n".join(lines) + "\n", "utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1",
           "SPEAKIMG_TINY_DIR": str(tiny_root)}  # fmt: skip
    table = [(a, b.replace("$TMP", str(tmp_path))) for a, b in substitutions()]
    found = documented_commands()
    seconds = {}
    for command in RUN:
        assert command in found, f"{command!r} is no longer documented: update RUN"
        for documented, replacement in table:
            command = command.replace(documented, replacement)
        argv = shlex.split(command)
        assert argv[0] == "python"
        start = time.perf_counter()
        done = subprocess.run([sys.executable, *argv[1:]], cwd=work, env=env, capture_output=True, text=True,
                              timeout=600)  # fmt: skip
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr, f"{command}\n{done.stderr[-3000:]}"
        seconds[command] = time.perf_counter() - start
    print("\n".join(f"{s:7.1f} s  {c}" for c, s in seconds.items()))  # shown with -s
    tiny = [a.replace("/tmp/", f"{tmp_path}/") for a in shlex.split(EVAL_TINY) if a.startswith("/tmp/tiny/")]
    assert tiny and all(Path(a).exists() for a in tiny), "the tiny evaluation of docs/evaluation.md names missing files"
    report = work / "data" / "speech" / "report" / "report.json"
    assert report.is_file() and (work / "data" / "speech" / "mels_vae").is_dir()
    assert (work / "data" / "quickstart" / "manifest.jsonl").is_file()


def test_references_point_inside_the_repository():
    """Issue 13 item 6: the method document is docs/method.md; links in the docs resolve in the repository."""
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    for name in tracked:
        path = REPO / name
        if path.suffix in (".py", ".md", ".yaml", ".yml", ".ipynb", ".toml", ".txt") and path.is_file():
            text = path.read_text("utf-8", errors="replace")
            stale = re.findall(r"(?<![\w/])METHOD\.md|\.\./shared/|/work/shared", text)
            assert name == Path(__file__).relative_to(REPO).as_posix() or not stale, f"{name}: {stale}"
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text("utf-8")):
            if not re.match(r"[a-z]+://|mailto:", target):
                assert (doc.parent / target).exists(), f"{doc.name}: link to {target}, which is not in the repository"
