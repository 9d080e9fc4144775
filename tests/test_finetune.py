"""Fine-tuning from an existing student (``edgefusion train student --init MODEL``): weights, provenance, errors, resume."""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from edgefusion.cli import main  # noqa: E402
from edgefusion.errors import UserError  # noqa: E402
from edgefusion.models import build_model  # noqa: E402
from edgefusion.models.checkpoint import model_payload, read_checkpoint, save_checkpoint  # noqa: E402
from edgefusion.models.provenance import inherited, provenance_comment, provenance_of  # noqa: E402
from edgefusion.resources import ASSETS, resource_dir  # noqa: E402
from edgefusion.training import distill as D  # noqa: E402
from edgefusion.training import distill_ctx as DC  # noqa: E402
from edgefusion.training.loop import Interrupted, _check_resume  # noqa: E402

STUDENT_LD = ASSETS / "models" / "student-ld.pt"
STUDENT_S = ASSETS / "models" / "student-s.pt"
#: SHA-256 of the authors' LD-Lite ``weight/final.pt`` (../shared/models/ld-lite/SHA256SUMS).
LD_LITE_FILE_SHA256 = "38099dbf221a951609439692f6693e8283d49e118cb2576906fda9df6ea454ea"
TINY_TEACHER = {"width": 4, "downsamples": 1, "res_blocks": 1, "style_dim": 2, "mlp_width": 8}
PIXEL_META = {"stage": "teacher", "objective": "pixel: test weights; NOT the paper's language-driven objective", "language_objective_meaningful": False}

CTX_RECIPE = """
[model]
architecture = "student-ctx"
size = "{size}"
[distill]
crop = 32
augmentations = ["s1-g1-1"]
cache_dir = "{cache}"
[train]
steps = {steps}
batch_size = 2
lr = {lr}
checkpoint_every = 3
log_every = 1
amp = "off"
"""

V1_RECIPE = """
[model]
size = "s"
[data]
crop = 32
[train]
steps = 2
batch_size = 2
lr = 0.0
[finetune]
steps = 2
batch_size = 1
lr = 0.0
"""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def data(tno_corners) -> Path:
    """Two small real pairs (shipped TNO samples, 48x64 corner)."""
    return tno_corners


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    """A tiny teacher with the pixel objective's provenance: no licence, not language-driven."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    save_checkpoint(path, model_payload(build_model("teacher", TINY_TEACHER), "teacher", TINY_TEACHER, PIXEL_META))
    return path


def _recipe(folder: Path, size: str = "s+", steps: int = 2, lr: float = 0.0) -> Path:
    path = folder / f"ft-{size}-{steps}-{lr}.toml"
    path.write_text(CTX_RECIPE.format(size=size, steps=steps, lr=lr, cache=folder / "cache"))
    return path


def _train(teacher: Path, data: Path, recipe: Path, out: Path, *extra: str) -> int:
    return main(["train", "student", "--teacher", str(teacher), "--data", str(data), "--config", str(recipe), "--out", str(out), "--device", "cpu", *extra])


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, data, teacher) -> Path:
    """``student.pt`` of ``--init student-ld`` at learning rate 0 against the pixel teacher."""
    folder = tmp_path_factory.mktemp("finetuned")
    assert _train(teacher, data, _recipe(folder), folder / "run", "--init", "student-ld") == 0
    return folder / "run" / "student.pt"


def test_at_learning_rate_zero_the_student_is_the_init_model(finetuned):
    written, init = _weights(finetuned), _weights(STUDENT_LD)
    assert written.keys() == init.keys()
    assert [k for k in init if not torch.equal(written[k], init[k])] == []


def test_a_learning_rate_moves_the_init_weights_a_few_steps_worth(tmp_path, data, teacher):
    steps, lr = 2, 0.005
    assert _train(teacher, data, _recipe(tmp_path, steps=steps, lr=lr), tmp_path / "run", "--init", "student-ld") == 0
    written, init = _weights(tmp_path / "run" / "student.pt"), _weights(STUDENT_LD)
    moved = {k: float((written[k] - init[k]).abs().max()) for k in init}
    assert all(v > 0 for v in moved.values()), moved
    assert max(moved.values()) <= 3 * steps * lr  # Adam steps of about lr each: fine-tuned, not re-initialized


def test_provenance_names_the_init_and_carries_ld_lite(finetuned, capsys):
    payload = read_checkpoint(finetuned)
    prov = provenance_of(payload)
    digest = _sha256(STUDENT_LD)
    assert prov["init"]["model"] == "student-ld" and prov["init"]["sha256"] == digest
    assert payload["metadata"]["arguments"] == {"--init": digest}
    # derived from LD-Lite through the init model, although the teacher is not LD-Lite
    assert prov["teacher"]["architecture"] == "teacher" and "licence" not in prov["teacher"]
    assert prov["licence"] == "Apache-2.0" and "LD-Lite" in prov["attribution"]
    assert prov["init"]["teacher"]["source"]["sha256"] == LD_LITE_FILE_SHA256
    # no longer a language-objective model: fine-tuned against a pixel-objective teacher
    assert prov["language_objective_meaningful"] is False
    assert prov["objective"].startswith("fine-tuned from student-ld (whose objective: distillation") and prov["objective"].endswith(PIXEL_META["objective"])
    comment = provenance_comment(prov)  # what C arrays of its bundles carry
    assert "fine-tuned from student-ld" in comment and "licence: Apache-2.0" in comment and "LD-Lite" in comment
    assert str(finetuned.parent) not in json.dumps(payload["metadata"])
    assert main(["inspect", str(finetuned)]) == 0
    out = capsys.readouterr().out
    assert f"fine-tuned from: student-ld (SHA-256 {digest[:12]}…)" in out and "language objective meaningful: NO" in out


def test_a_v1_student_fine_tunes_through_both_phases(tmp_path, data, teacher):
    recipe = tmp_path / "v1.toml"
    recipe.write_text(V1_RECIPE)
    assert _train(teacher, data, recipe, tmp_path / "run", "--init", "pixel") == 0
    written, init = _weights(tmp_path / "run" / "student.pt"), _weights(STUDENT_S)
    assert written.keys() == init.keys() and all(torch.equal(written[k], init[k]) for k in init)
    prov = provenance_of(read_checkpoint(tmp_path / "run" / "student.pt"))
    assert prov["init"]["model"] == "student-s" and prov["init"]["sha256"] == _sha256(STUDENT_S)
    assert prov["language_objective_meaningful"] is False and "licence" not in prov


def test_a_v1_run_whose_first_phase_ended_resumes_only_with_its_init(tmp_path, data, teacher):
    recipe = tmp_path / "v1.toml"
    recipe.write_text(V1_RECIPE)
    calls = []

    def kill_in_phase_two(step, _):  # phase 1 has 2 steps: the third call is phase 2's first step, before any checkpoint of it
        calls.append(step)
        if len(calls) == 3:
            raise Interrupted

    run = tmp_path / "run"
    with pytest.raises(Interrupted):
        D.distill(teacher, data, recipe, run, progress=False, hooks=(kill_in_phase_two,), init="student-s")
    assert (run / "crops" / "student-crops.pt").is_file() and not (run / "last.pt").exists()
    with pytest.raises(UserError, match=r"student-crops\.pt: the arguments differ .*\(--init: '[0-9a-f]{64}' -> None\)"):
        D.distill(teacher, data, recipe, run, resume=True, progress=False)
    assert D.distill(teacher, data, recipe, run, resume=True, progress=False, init="student-s").is_file()


def _damaged(folder: Path, kind: str) -> str:
    """An ``--init`` value that cannot be a student for the s+ recipe."""
    if kind == "truncated":
        (folder / "cut.pt").write_bytes(STUDENT_LD.read_bytes()[:20000])
        return str(folder / "cut.pt")
    if kind == "foreign":
        (folder / "notes.pt").write_text("not a model\n")
        return str(folder / "notes.pt")
    if kind == "teacher":
        save_checkpoint(folder / "teacher.pt", model_payload(build_model("ld-lite", {}), "ld-lite", {}, {"stage": "teacher"}))
        return str(folder / "teacher.pt")
    return {"missing": str(folder / "absent.pt"), "architecture": "student-s", "empty": ""}[kind]


@pytest.mark.parametrize("kind, size, expected", [
    ("architecture", "s+", ["--init student-s is a 'student' (size s) model", "builds 'student-ctx' (size s+, head structured, dilated 0)"]),
    ("config", "s", ["--init student-ld is a 'student-ctx' (size s+,", "builds 'student-ctx' (size s, head structured"]),
    ("missing", "s+", ["--init: checkpoint not found:"]),
    ("truncated", "s+", ["--init: cannot read checkpoint", "truncated"]),
    ("foreign", "s+", ["--init: cannot read checkpoint", "not a checkpoint"]),
    ("teacher", "s+", ["is not a student (architecture 'ld-lite')"]),
    ("empty", "s+", ["--init: an empty model name"]),  # --init "$UNSET" must not train from scratch
])
def test_an_unusable_init_is_one_line_before_anything_is_written(tmp_path, data, teacher, capsys, kind, size, expected):
    spec = "student-ld" if kind == "config" else _damaged(tmp_path, kind)
    recipe = _recipe(tmp_path, size=size)
    assert _train(teacher, data, recipe, tmp_path / "run", "--init", spec) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("edgefusion: --init") and "Traceback" not in err
    assert all(text in err for text in expected), err
    if kind in ("architecture", "config"):
        assert str(recipe) in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()  # refused before the teacher cache


def test_resume_continues_the_fine_tune_and_refuses_another_init(tmp_path, data, teacher, capsys):
    recipe = _recipe(tmp_path, steps=6, lr=0.005)
    reference = DC.distill_ctx(teacher, data, recipe, tmp_path / "straight", progress=False, init="student-ld")

    def kill(step, _):
        if step == 4:  # after the step-3 checkpoint
            raise Interrupted

    run = tmp_path / "run"
    with pytest.raises(Interrupted):
        DC.distill_ctx(teacher, data, recipe, run, progress=False, hooks=(kill,), init="student-ld")
    other = tmp_path / "other.pt"
    config = {"size": "s+", "head": "structured", "dilated": 0}
    save_checkpoint(other, model_payload(build_model("student-ctx", config), "student-ctx", config, {"stage": "student"}))
    with pytest.raises(UserError, match=r"arguments differ .*\(--init: '[0-9a-f]{64}' -> '[0-9a-f]{64}'\)"):
        DC.distill_ctx(teacher, data, recipe, run, resume=True, progress=False, init=str(other))
    assert _train(teacher, data, recipe, run, "--resume") == 2  # --init left out
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"(--init: '{_sha256(STUDENT_LD)}' -> None)" in err
    final = DC.distill_ctx(teacher, data, recipe, run, resume=True, progress=False, init="student-ld")
    a, b = _weights(reference), _weights(final)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []  # continued from step 3, not re-initialized
    assert read_checkpoint(run / "last.pt")["training"]["step"] == 6


def test_a_run_that_predates_init_resumes_only_without_it():
    payload = {"training": {}, "architecture": "student-ctx", "config": {}, "metadata": {"recipe": {}}}
    stage = SimpleNamespace(architecture="student-ctx", model_config={}, arguments={"--init": None})
    _check_resume(payload, stage, {}, Path("last.pt"))  # no error
    stage.arguments = {"--init": "ab" * 32}
    with pytest.raises(UserError, match="--init: None -> 'abab"):
        _check_resume(payload, stage, {}, Path("last.pt"))


@pytest.mark.parametrize("flags, expected", [
    ((True, True), True), ((True, False), False), ((False, None), False), ((True, None), None), ((None, None), None),
])
def test_inherited_flag_is_true_only_when_every_source_is(flags, expected):
    assert inherited(*({"language_objective_meaningful": f} for f in flags))["language_objective_meaningful"] is expected


def test_inherited_licences_and_attributions_are_each_kept_once():
    ld = {"licence": "Apache-2.0", "attribution": "LD-Lite"}
    assert inherited(ld, None, {"licence": "MIT"}, dict(ld)) == {
        "language_objective_meaningful": None, "licence": "Apache-2.0 AND MIT", "attribution": "LD-Lite"}
    assert inherited({"language_objective_meaningful": False}) == {"language_objective_meaningful": False}


def test_the_fine_tune_recipe_trains_the_shipped_default_on_its_cache():
    def parsed(name: str) -> dict:
        with open(resource_dir("train") / f"{name}.toml", "rb") as handle:
            return tomllib.load(handle)

    finetune, shipped = parsed("student-ld-finetune"), parsed("student-ld")
    assert finetune["model"] == shipped["model"]
    assert finetune["distill"]["augmentations"] == shipped["distill"]["augmentations"]  # the teacher cache is shared
    assert finetune["train"]["steps"] < shipped["train"]["steps"] and finetune["train"]["lr"] < shipped["train"]["lr"]
    recipe = DC.load_ctx_recipe("student-ld-finetune")  # by name, as from an installed wheel
    assert read_checkpoint(STUDENT_LD)["config"] == {k: getattr(recipe["model"], k) for k in ("size", "head", "dilated")}
