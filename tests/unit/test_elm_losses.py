"""ELM's distillation losses in the trainer: the class loss trains a two-class head with the default
options (Eq. 4 alone cannot, and is refused), and the attention loss does not depend on padding."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from search_spaces.elm import ElmShape
from tests.unit.tiny_teacher import make_tiny_teacher
from trainers.distill.teacher import Teacher
from trainers.elm.distill import Adapters, attention_loss, path_losses
from trainers.elm.finetune import TuneConfig, tune_on_task
from trainers.elm.options import ElmSubnetOptions
from trainers.elm.supernet import ElmSuperNet
from trainers.elm.task import ElmClassifier, TaskTeacher
from trainers.encode import Encoded
from trainers.contract import TrainerError

ROOT = Path(__file__).resolve().parents[2]
SHAPE = ElmShape(num_layers=2, hidden_size=32, num_heads=4, inner_size=8, vocab_size=120, max_positions=40)
SENTENCES = ["the cat sat on the mat", "a dog ran in the park", "the sun rises over the hills",
             "she paints the blue door", "the river flows to the sea", "we walk to the old bridge"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Teacher:
    return Teacher.load(make_tiny_teacher(tmp_path_factory.mktemp("elm-losses") / "teacher"))


def supernet() -> ElmSuperNet:
    torch.manual_seed(0)
    return ElmSuperNet(SHAPE, [[8] * 6, [8] * 6])


def task_rows(teacher: Teacher, width: int = 16) -> Encoded:
    batch = teacher.tokenizer(SENTENCES, padding="max_length", max_length=width, return_tensors="pt")
    return Encoded(batch["input_ids"].long(), batch["attention_mask"].long(), torch.tensor([0, 1, 0, 1, 1, 0]))


def probe(teacher: Teacher, classes: int = 2) -> TaskTeacher:
    torch.manual_seed(1)
    head = nn.Linear(teacher.hidden_size, classes)
    nn.init.normal_(head.weight, std=1.0)
    return TaskTeacher(teacher, head)


def head_gradient(teacher: Teacher, config: TuneConfig) -> float:
    """The largest |gradient| on a fresh two-class head in one fine-tune step on the super-network."""
    net = supernet()
    classifier = ElmClassifier(net, 2)
    grads: list[torch.Tensor] = []
    classifier.head.weight.register_hook(lambda g: grads.append(g.detach().clone()))  # before clipping
    tune_on_task(classifier, Adapters(2, 32, teacher.hidden_size), probe(teacher), task_rows(teacher),
                 replace(config, steps=1), net.sample_path)
    assert len(grads) == 1
    return float(grads[0].abs().max())


def test_a_two_class_head_gets_a_gradient_with_the_default_options(teacher: Teacher) -> None:
    defaults = ElmSubnetOptions().finetune_config()
    assert defaults.loss == "pearson" and defaults.label_weight == 0.0
    # Eq. 4 alone (what the defaults were) leaves the head ~1e-5 here; tune_on_task now refuses it.
    assert head_gradient(teacher, defaults) > 0.1


def test_a_class_loss_that_cannot_train_a_two_class_head_is_refused(teacher: Teacher) -> None:
    with pytest.raises(ValueError, match="task 'movie-reviews' has two classes: .* cannot train a two-class head"):
        ElmSubnetOptions(intra_class_weight=0.0)
    with pytest.raises(ValueError, match="task 'sms-spam' has two classes"):
        ElmSubnetOptions(intra_class_weight=0.0, task="trec6", eval_tasks=("trec6", "sms-spam"))
    # Anything that gives the head a gradient passes: gold labels, the KL of Eq. 1, or only many-class tasks.
    ElmSubnetOptions(intra_class_weight=0.0, label_weight=0.5)
    ElmSubnetOptions(intra_class_weight=0.0, loss="classic")
    ElmSubnetOptions(intra_class_weight=0.0, task="trec6", eval_tasks=("trec6", "bbc-news"))
    # A task whose class count validation cannot know is checked when its data is read.
    config = replace(ElmSubnetOptions().finetune_config(), intra_class_weight=0.0)
    with pytest.raises(TrainerError, match="^fine-tune on t: .* cannot train a two-class head"):
        tune_on_task(ElmClassifier(supernet(), 2), Adapters(2, 32, 32), probe(teacher), task_rows(teacher), config,
                     lambda g: None, what="fine-tune on t")


def test_lmnas_validate_refuses_it_in_one_line(tmp_path: Path) -> None:
    study = yaml.safe_load((ROOT / "studies" / "elm.yaml").read_text())
    study["trainer"]["options"] |= {"intra_class_weight": 0.0, "label_weight": 0.0}
    path = tmp_path / "elm.yaml"
    path.write_text(yaml.safe_dump(study))
    result = subprocess.run([sys.executable, "-m", "orchestrator.cli", "validate", str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "trainer.options" in lines[0] and "cannot train a two-class head" in lines[0]


def test_the_attention_loss_of_a_sentence_does_not_change_when_it_is_padded(teacher: Teacher) -> None:
    # By hand: 4 real tokens, then the same maps padded to 8 (padded keys get no probability; padded
    # query rows are anything).
    gen = torch.Generator().manual_seed(0)
    t = torch.softmax(torch.randn(1, 4, 4, 4, generator=gen), -1)  # (B, H, S, S)
    s = torch.softmax(torch.randn(1, 2, 4, 4, generator=gen), -1)  # fewer heads: aligned by merging

    def padded(probs: torch.Tensor) -> torch.Tensor:
        out = torch.full((1, probs.shape[1], 8, 8), 1 / 8)
        out[:, :, :4] = 0.0
        out[:, :, :4, :4] = probs
        return out

    mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0]])
    alone = attention_loss("pearson", t, s, torch.ones(1, 4, dtype=torch.long))
    assert attention_loss("pearson", padded(t), padded(s), mask).item() == pytest.approx(alone.item(), abs=1e-6)
    assert attention_loss("pearson", t, s, None).item() == pytest.approx(alone.item(), abs=1e-6)
    classic = attention_loss("classic", t, s, None).item()  # a sum over keys: padded ones add nothing
    assert attention_loss("classic", padded(t), padded(s), mask).item() == pytest.approx(classic, abs=1e-6)

    # Through the models: the teacher and a super-network path on one sentence, alone and padded.
    net = supernet().eval()
    adapters = Adapters(2, 32, teacher.hidden_size)
    losses = []
    for width in (None, 16):
        enc = teacher.tokenizer(["the cat sat on the mat"], return_tensors="pt",
                                **({} if width is None else {"padding": "max_length", "max_length": width}))
        ids, attn = enc["input_ids"], enc["attention_mask"]
        with torch.no_grad():
            losses.append(path_losses("pearson", net(ids, attn, arch=net.full_path("bert")), teacher(ids, attn),
                                      adapters, attn))
    assert losses[1].attention.item() == pytest.approx(losses[0].attention.item(), abs=1e-5)
    assert losses[1].hidden.item() == pytest.approx(losses[0].hidden.item(), abs=1e-5)
