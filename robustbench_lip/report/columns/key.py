"""`ColumnKey`: the one encoding of a dynamic leaderboard column's name.

A dynamic column is a kind, a metric and an ε or radius, plus what the kind needs:
- `cert <metric>@<ε>` — a Lipschitz certificate (metric acc, pixel acc, mIoU);
- `smoothed cert <metric>@<r> (σ=<σ>)`, `smoothed <abstain|pixel abstain> (σ=<σ>)` — smoothing;
- `<attack>_<norm>@<ε> [<tag>] <metric>` — one attack (kind "attack", `attack` its label, e.g.
  `pgd` or `pgd(pixel)`), the worst case over attacks (kind "worst") or a protocol's robust figure
  (kind "robust"); the tag is `<protocol>, n=<n>[, steps=<s>]` (records before tags: no bracket).
`ColumnKey.parse(name)` is the inverse of `name()`; `sort_key()` orders the dynamic columns and
`group()` gives the HTML header group and the short label.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from robustbench_lip.attacks.eps import parse_eps_token
from robustbench_lip.errors import RlipError
from robustbench_lip.report.columns.names import PATTERN_DOCS
from robustbench_lip.report.metrics import ATTACK_COLUMNS, CERTIFY_COLUMNS, SMOOTHING_COLUMNS

CERT, SMOOTHED, ATTACK, WORST, ROBUST = "cert", "smoothed", "attack", "worst", "robust"
#: Metrics of each kind, in column order.
CERT_METRICS: tuple[str, ...] = tuple(c.metric for c in CERTIFY_COLUMNS)
_SMOOTHED_CERT = tuple(radius.metric for _, radius, _ in SMOOTHING_COLUMNS)
_ABSTAIN = tuple(abstain.metric for _, _, abstain in SMOOTHING_COLUMNS)
SMOOTHED_METRICS: tuple[str, ...] = (*_SMOOTHED_CERT, *_ABSTAIN)
_PIXEL = {f"pixel {c.metric}": c for c in ATTACK_COLUMNS if c.pixel_doc}
ATTACK_METRICS: tuple[str, ...] = (
    *(c.metric for c in ATTACK_COLUMNS if c.pixel_doc),
    *_PIXEL,
    *(c.metric for c in ATTACK_COLUMNS if not c.pixel_doc),
)
NORM_TEXT: dict[str, str] = {"linf": "ℓ∞", "l2": "ℓ2"}
_METRIC_WHAT = {
    **{c.metric: c.what for c in ATTACK_COLUMNS},
    **{p: f"Pixel {c.what.lower()}" for p, c in _PIXEL.items()},
}
_CERT_WHAT = {c.metric: c.what for c in CERTIFY_COLUMNS}


def _alt(names: tuple[str, ...]) -> str:
    """A regex alternation of the names, longest first (so `pixel acc` is not read as `acc`)."""
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


_ATTACK_RE = re.compile(
    r"^(?P<attack>[^@\s]+)_(?P<norm>linf|l2|[a-z0-9]+)@(?P<eps>\S+) (?:\[(?P<tag>[^\]]*)\] )?"
    rf"(?P<metric>{_alt(ATTACK_METRICS)})$"
)
_CERT_RE = re.compile(rf"^cert (?P<metric>{_alt(CERT_METRICS)})@(?P<eps>\S+)$")
_SMOOTH_RE = re.compile(
    rf"^smoothed (?:cert (?P<metric>{_alt(_SMOOTHED_CERT)})@(?P<eps>\S+)|(?P<abstain>{_alt(_ABSTAIN)}))"
    r" \(σ=(?P<sigma>[^)]+)\)$"
)


def eps_value(text: str | None) -> float:
    """ε as a number from its text (`8/255` → 0.0314); inf when unparseable (sorts last)."""
    try:
        return parse_eps_token(text or "", "l2")
    except RlipError:
        return math.inf


def parse_tag(tag: str) -> dict[str, str]:
    """`standard, n=128, steps=20` → {"protocol": "standard", "n": "128", "steps": "20"}."""
    parts = [p.strip() for p in tag.split(",") if p.strip()]
    out = {"protocol": parts[0]} if parts and "=" not in parts[0] else {}
    out.update(dict(p.split("=", 1) for p in parts if "=" in p))
    return out


def make_tag(protocol: str, n: int | None, steps: str | None = None) -> str:
    """`<protocol>, n=<n>[, steps=<s>]` (n unknown: `n=?`)."""
    return f"{protocol}, n={'?' if n is None else n}" + (f", steps={steps}" if steps else "")


def attack_metric(short: str, level: str | None) -> str:
    """Column metric of an attack value: `acc` / `prec` become `pixel acc` / `pixel prec` at level pixel."""
    pixel = f"pixel {short}"
    return pixel if level == "pixel" and pixel in _PIXEL else short


@dataclass(frozen=True)
class ColumnKey:
    """One dynamic column (see the module docstring). eps and sigma are texts (attacks.eps.format_eps);
    attack is the attack's label for kind "attack" (else None); tag the bracket text or None."""

    kind: str
    metric: str
    eps: str | None = None
    norm: str | None = None
    attack: str | None = None
    tag: str | None = None
    sigma: str | None = None

    # -- builders ------------------------------------------------------------------------------
    @classmethod
    def cert(cls, metric: str, eps: str) -> ColumnKey:
        return cls(CERT, metric, eps)

    @classmethod
    def smoothed(cls, metric: str, eps: str | None, sigma: float) -> ColumnKey:
        """Certified metric at radius eps, or an abstention rate (eps None)."""
        return cls(SMOOTHED, metric, eps, sigma=f"{sigma:g}")

    @classmethod
    def attacked(cls, attack: str, norm: str, eps: str, metric: str, tag: str | None = None) -> ColumnKey:
        """attack "worst" / "robust" give those kinds, any other name a single attack's column."""
        kind = attack if attack in (WORST, ROBUST) else ATTACK
        return cls(kind, metric, eps, norm, None if kind != ATTACK else attack, tag)

    # -- text ----------------------------------------------------------------------------------
    @property
    def attack_label(self) -> str:
        """The name before `_<norm>`: the attack's label, `worst` or `robust`."""
        return self.attack if self.kind == ATTACK and self.attack else self.kind

    def name(self) -> str:
        """The column's name in every table and report."""
        if self.kind == CERT:
            return f"cert {self.metric}@{self.eps}"
        if self.kind == SMOOTHED:
            what = self.metric if self.eps is None else f"cert {self.metric}@{self.eps}"
            return f"smoothed {what} (σ={self.sigma})"
        tag = "" if self.tag is None else f" [{self.tag}]"
        return f"{self.attack_label}_{self.norm}@{self.eps}{tag} {self.metric}"

    def __str__(self) -> str:
        return self.name()

    @classmethod
    def parse(cls, name: str) -> ColumnKey | None:
        """The key of a dynamic column name; None for any other name."""
        if m := _CERT_RE.match(name):
            return cls(CERT, m["metric"], m["eps"])
        if m := _SMOOTH_RE.match(name):
            return cls(SMOOTHED, m["metric"] or m["abstain"], m["eps"], sigma=m["sigma"])
        if m := _ATTACK_RE.match(name):
            return cls.attacked(m["attack"], m["norm"], m["eps"], m["metric"], m["tag"])
        return None

    def parts(self) -> dict[str, Any]:
        """An attack column's parts: attack (label), norm, eps, metric and, when tagged, protocol,
        n (int or None), steps."""
        out: dict[str, Any] = {"attack": self.attack_label, "norm": self.norm, "eps": self.eps}
        out["metric"] = self.metric
        if self.tag is not None:
            tag = parse_tag(self.tag)
            n = tag.get("n", "")
            out.update(
                protocol=tag.get("protocol"), n=int(n) if n.isdigit() else None, steps=tag.get("steps")
            )
        return out

    @property
    def is_attack(self) -> bool:
        """One attack's, the worst case's or a protocol's column."""
        return self.kind in (ATTACK, WORST, ROBUST)

    # -- order and groups ----------------------------------------------------------------------
    def sort_key(self) -> tuple[Any, ...]:
        """Certified per metric and ε; smoothed per σ, metric, radius; attacks per norm, attack, ε,
        metric; then the worst-case columns; then the protocols' robust columns."""
        if self.kind == CERT:
            return (0, CERT, CERT_METRICS.index(self.metric), eps_value(self.eps), 0)
        if self.kind == SMOOTHED:
            order = SMOOTHED_METRICS.index(self.metric)
            return (0, SMOOTHED, eps_value(self.sigma), order, eps_value(self.eps or "0"))
        group = 3 if self.kind == ROBUST else 1 + (self.kind == WORST)
        label = f"{self.attack_label} {self.tag or ''}"
        return (group, self.norm, label, eps_value(self.eps), ATTACK_METRICS.index(self.metric))

    def group(self) -> tuple[str, str]:
        """(HTML header group, short label): the label drops what the group says."""
        if self.kind == CERT:
            return "certified ℓ2", f"{self.metric}@{self.eps}"
        if self.kind == SMOOTHED:  # probabilistic: never beside the deterministic certificates
            label = self.metric if self.eps is None else f"{self.metric}@{self.eps}"
            return f"smoothed σ={self.sigma}", label
        tag = f" [{self.tag}]" if self.tag is not None else ""
        norm = NORM_TEXT.get(self.norm or "", self.norm)
        return f"{self.attack_label} {norm}{tag}", f"{self.metric}@{self.eps}"

    # -- docs ----------------------------------------------------------------------------------
    def pattern(self) -> str:
        """The column's pattern in PATTERN_DOCS (e.g. `cert acc@<ε>`)."""
        if self.kind == SMOOTHED:
            what = self.metric if self.eps is None else f"cert {self.metric}@<r>"
            return f"smoothed {what} (σ=<σ>)"
        if self.kind == CERT:
            return f"cert {self.metric}@<ε>"
        if self.kind == WORST:
            return "worst_<norm>@<ε> [every attack, n=<n>] <metric>"
        if self.kind == ROBUST:
            return "robust_<norm>@<ε> [<protocol>, n=<n>] <metric>"
        if "(" in self.attack_label:
            return "<attack>(<objective>)_<norm>@<ε> [<protocol>, n=<n>] <metric>"
        return f"<attack>_<norm>@<ε> [<protocol>, n=<n>] {self.metric}"

    def doc(self) -> str:
        """One-line explanation of this very column."""
        if self.kind == SMOOTHED:
            return PATTERN_DOCS[self.pattern()]
        if self.kind == CERT:
            what = f"Certified {_CERT_WHAT[self.metric]} at ℓ2 radius ε = {self.eps}"
            return f"{what} (provable, from the certified L(A) upper bound)."
        what = _METRIC_WHAT[self.metric]
        eps = f"{self.norm} budget ε = {self.eps}"
        tag = f" [{self.tag}]" if self.tag is not None else ""
        if self.kind == WORST:
            return f"{what} under the worst attack{tag} at {eps} (smallest value over all attacks run)."
        if self.kind == ROBUST:
            return f"{what} under attack protocol{tag} at {eps} (empirical, first n test images)."
        return f"{what} under {self.attack}{tag} at {eps} (empirical, on the attacked test images)."
