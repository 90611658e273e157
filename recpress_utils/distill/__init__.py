"""Distillation methods, one home: each a :class:`~recpress_utils.distill.base.Distiller` (teacher(s),
student, batch -> loss) in its own small module, named for configs in :data:`METHODS`. A new method
is one module and one entry here, plus its entry in a profile's ``kd.methods``.

Response-based
    ``soft_labels`` (:mod:`.soft_labels`: the paper's, Hinton et al.; ``hard_weight: 1`` mixes in the
    true item), ``ranking`` (:mod:`.ranking`: RD, Tang & Wang 2018), ``rrd`` (:mod:`.rrd`: relaxed
    ranking distillation, Kang et al. 2020).
Feature-based
    ``hint`` (:mod:`.hint`: FitNets), ``experts`` (:mod:`.experts`: DE, Kang et al. 2020).
Attention-based
    ``attention`` (:mod:`.attention`: the student's attention maps towards the teacher's).
Relation-based
    ``relational`` (:mod:`.relational`: item-item similarity of the embeddings, Park et al. 2019).
Training schemes
    offline (every method above: a trained, frozen teacher), ``multi_teacher``
    (:mod:`.multi_teacher`: averaged soft labels of several teachers), ``mutual`` (:mod:`.mutual`:
    online, deep mutual learning with a peer trained alongside), and self-distillation
    ("born-again": ``soft_labels`` whose teacher is the trained no-KD student of the same size; a
    config choice, ``teacher: control``).

With ``distill.top_k`` the methods that read the teacher's ranking (soft labels, RD, RRD) take its
top-K cached once per training prefix (``cache``), and ``multi_teacher`` one cache per teacher
(``caches``): :func:`uses_teacher_cache`, :func:`caches_every_teacher`.

Every method's loss is ``hard_weight * (the student's own loss) + weight * (its term)``; the no-KD
control is the student trained with its own loss alone (:func:`recpress_utils.runs.kd_run`).
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping, Sequence

from torch import nn

from recpress_utils.distill.attention import AttentionTransfer
from recpress_utils.distill.base import Distiller, freeze
from recpress_utils.distill.experts import DistillationExperts
from recpress_utils.distill.hint import Hint
from recpress_utils.distill.multi_teacher import MultiTeacher
from recpress_utils.distill.mutual import MutualLearning
from recpress_utils.distill.ranking import RankingDistillation
from recpress_utils.distill.relational import RelationalKD
from recpress_utils.distill.rrd import RelaxedRankingDistillation
from recpress_utils.distill.soft_labels import SoftLabels, distillation_loss, kd_loss


#: method name (in configs) -> its class
METHODS: dict[str, type[Distiller]] = {
    "soft_labels": SoftLabels,
    "ranking": RankingDistillation,
    "rrd": RelaxedRankingDistillation,
    "hint": Hint,
    "experts": DistillationExperts,
    "attention": AttentionTransfer,
    "relational": RelationalKD,
    "multi_teacher": MultiTeacher,
    "mutual": MutualLearning,
}

#: what the run supplies to a method that asks for it by name (not settings of a config)
CONTEXT = ("base_loss", "positions", "seed", "cache", "caches", "pool", "student_width", "peer", "peer_loss")


def method_settings(name: str) -> list[str]:
    """The settings a config may give method ``name`` (its constructor's, less the run's context)."""
    if name not in METHODS:
        raise ValueError(f"unknown distillation method {name!r}; known: {', '.join(METHODS)}")
    return [p for p in inspect.signature(METHODS[name].__init__).parameters
            if p not in ("self", "teachers", *CONTEXT)]


def method_defaults(name: str) -> dict[str, Any]:
    """What method ``name`` runs with where a config gives no setting: its constructor's defaults,
    ``hard_weight`` resolved to the method's own (soft labels leave out the true item, the others
    keep it), so that a report can say which value a run that set nothing used."""
    parameters = inspect.signature(METHODS[name].__init__).parameters
    defaults = {p: parameters[p].default for p in method_settings(name)}
    return {**defaults, "hard_weight": METHODS[name].default_hard_weight}


def uses_teacher_cache(name: str) -> bool:
    """Whether method ``name`` can read the teacher's cached top-K (``distill.top_k``): its first
    teacher's (``cache``) or every teacher's (``caches``, :func:`caches_every_teacher`)."""
    return bool({"cache", "caches"} & set(inspect.signature(METHODS[name].__init__).parameters))


def caches_every_teacher(name: str) -> bool:
    """Whether method ``name`` reads one cached top-K per teacher (multi-teacher soft labels)."""
    return "caches" in inspect.signature(METHODS[name].__init__).parameters


def build_method(name: str, teachers: Sequence[nn.Module], settings: Mapping[str, Any] | None = None,
                 **context: Any) -> Distiller:
    """Method ``name`` with the config's ``settings``; of the run's ``context`` (:data:`CONTEXT`) it
    receives what its constructor asks for. Unknown settings fail here, naming the accepted ones."""
    accepted = method_settings(name)
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(accepted))
    if unknown:
        raise ValueError(f"unknown setting(s) for method {name!r}: {', '.join(unknown)}; accepted: {', '.join(accepted)}")
    wanted = inspect.signature(METHODS[name].__init__).parameters
    given = {k: v for k, v in context.items() if k in wanted}
    if "teachers" in wanted:
        given["teachers"] = teachers
    elif teachers:
        raise ValueError(f"method {name!r} trains its own peer and takes no teacher")
    return METHODS[name](**given, **settings)


__all__ = ["CONTEXT", "METHODS", "Distiller", "build_method", "distillation_loss", "freeze", "kd_loss",
           "method_settings", "uses_teacher_cache", "caches_every_teacher"]
