"""The demo pool: a small national pool that reads like real life, as plain data.

Two funders (the Ministry of Science and ICT and Gyeonggi Province) pay into one pool; two
programs ("Startup Growth" and "University Research") share it; five organizations run six
projects on two national Ray clusters; the chest X-ray project holds a grant for urgent work.
``quotas.seed`` writes it through the real operations of the books (contributions,
appropriations, allocation requests and reviews), so the demo ledger is an honest one. Rates:
see ``quotas.flavors`` for where the throughput numbers come from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from quotas.accounts import Account, AccountKind
from quotas.admission import PriorityClass, SiteKind
from quotas.flavors import Flavor
from quotas.funding import Funder, FunderKind, Period
from quotas.inventory import BackendKind, ClusterSpec, Inventory, Tenancy
from quotas.quantities import Rate

POOL, PROGRAM, ORGANIZATION, PROJECT = AccountKind

DEMO_KUBE_CONTEXT = "gpupool-demo-npu"
"""The kubeconfig context of the demo's NPU cluster, ``kube-pangyo``: a machine without it (``make
run`` anywhere) declares the cluster but runs nothing there, and jobs that name the NPU wait."""

GAVEL_SOURCE = (
    "median single-GPU throughput ratio over 26 jobs in Gavel's simulation_throughputs.json "
    "(stanford-futuredata/gavel @ c4fa400), mapped one generation up: "
    "K80->V100, P100->A100, V100->H100"
)

NPU_SOURCE = (
    "not measured: the ratio of peak dense BF16 throughput in the vendors' data sheets "
    "(FuriosaAI RNGD 256 TFLOPS, NVIDIA H100 SXM 989 TFLOPS), to be replaced by a run of the "
    "pool's benchmark jobs on the cards; no public training-throughput table covers the NPU"
)

FLAVORS = (
    Flavor("h100-80g", memory_gb=80, relative_throughput=1.0),
    Flavor("a100-80g", memory_gb=80, relative_throughput=0.81),
    Flavor("v100-32g", memory_gb=32, relative_throughput=0.25),
    Flavor(
        "rngd-48g",
        memory_gb=48,
        relative_throughput=0.26,
        kubernetes_resource="furiosa.ai/rngd",
        named_only=True,
    ),
)
"""The demo's flavors; ``rngd-48g`` is a domestic NPU (FuriosaAI RNGD, 48 GB HBM3) behind its
vendor's Kubernetes device plugin, taken only by jobs that name it (its SDK is not CUDA)."""
THROUGHPUT_SOURCES = {"rngd-48g": NPU_SOURCE}
"""Where a demo flavor's relative throughput comes from, when not from Gavel's table."""
RATES = {
    "h100-80g": Rate.of("1.0"),
    "a100-80g": Rate.of("0.8"),
    "v100-32g": Rate.of("0.25"),
    "rngd-48g": Rate.of("0.26"),
}


@dataclass(frozen=True, slots=True)
class DemoRequest:
    project: str
    credits: int
    justification: str
    requested_by: str
    review: str | None = None
    """``approve``, ``adjust`` or ``None`` (left submitted for a program manager)."""
    adjusted_to: int | None = None
    tranche_percents: tuple[int, ...] = (100,)


@dataclass(frozen=True)
class DemoPool:
    period: Period
    funders: tuple[Funder, ...]
    contributions: tuple[tuple[str, int], ...]
    accounts: tuple[Account, ...]
    auto_approve: dict[str, int]
    appropriations: tuple[tuple[str, str, int], ...]
    """(program, funder, credits)."""
    budgets: dict[str, int]
    users: tuple[tuple[str, str], ...]
    members: tuple[tuple[str, str, str], ...]
    program_managers: tuple[tuple[str, str], ...]
    requests: tuple[DemoRequest, ...]
    clusters: tuple[ClusterSpec, ...]
    flavors: tuple[Flavor, ...] = FLAVORS
    rates: dict[str, Rate] = field(default_factory=lambda: dict(RATES))
    priority_grants: tuple[tuple[str, PriorityClass], ...] = ()
    """(project, class above normal), granted by a program manager of the project's program."""
    auditors: tuple[str, ...] = ()
    """Users (among ``users``) who hold the auditor role."""
    personas: tuple[tuple[str, str], ...] = ()
    """(role in words, user): whom ``gpupool serve --demo`` offers to sign in as."""


def quarter_of(at: datetime) -> Period:
    """The calendar quarter containing ``at``, as an allocation period (e.g. ``2026-q4``)."""
    quarter = (at.month - 1) // 3
    starts = datetime(at.year, quarter * 3 + 1, 1, tzinfo=UTC)
    ends = (
        datetime(at.year + 1, 1, 1, tzinfo=UTC)
        if quarter == 3
        else datetime(at.year, quarter * 3 + 4, 1, tzinfo=UTC)
    )
    return Period(f"{at.year}-q{quarter + 1}", starts, ends)


def demo_pool(now: datetime) -> DemoPool:
    return DemoPool(
        period=quarter_of(now),
        funders=(
            Funder("msit", "Ministry of Science and ICT", FunderKind.MINISTRY, 3_500),
            Funder("gyeonggi", "Gyeonggi Province", FunderKind.LOCAL_GOVERNMENT, 3_500),
        ),
        contributions=(("msit", 200_000), ("gyeonggi", 50_000)),
        accounts=(
            Account("national", POOL, display_name="National AI Compute Pool"),
            Account(
                "startups",
                PROGRAM,
                "national",
                share=2,
                guaranteed_gpus=16,
                borrowing_limit_gpus=16,
                display_name="Startup Growth",
            ),
            Account(
                "universities",
                PROGRAM,
                "national",
                share=3,
                guaranteed_gpus=24,
                display_name="University Research",
            ),
            Account("hanbit-robotics", ORGANIZATION, "startups", display_name="Hanbit Robotics"),
            Account("seoul-vision", ORGANIZATION, "startups", display_name="Seoul Vision AI"),
            Account("kaist", ORGANIZATION, "universities", share=2, display_name="KAIST"),
            Account("snu", ORGANIZATION, "universities", display_name="Seoul National University"),
            Account("postech", ORGANIZATION, "universities", display_name="POSTECH"),
            Account(
                "hanbit-robot-policy",
                PROJECT,
                "hanbit-robotics",
                display_name="Warehouse robot grasping policy",
            ),
            Account(
                "seoulvision-doc-ocr", PROJECT, "seoul-vision", display_name="Korean document OCR"
            ),
            Account("kaist-nlp", PROJECT, "kaist", display_name="Korean LLM instruction tuning"),
            Account("kaist-protein", PROJECT, "kaist", display_name="Protein structure prediction"),
            Account(
                "snu-medical-imaging", PROJECT, "snu", display_name="Chest X-ray foundation model"
            ),
            Account(
                "postech-materials",
                PROJECT,
                "postech",
                display_name="Graph networks for battery materials",
            ),
        ),
        auto_approve={"startups": 2_000, "universities": 5_000},
        appropriations=(
            ("startups", "msit", 60_000),
            ("startups", "gyeonggi", 30_000),
            ("universities", "msit", 130_000),
            ("universities", "gyeonggi", 10_000),
        ),
        budgets={"kaist": 40_000},
        users=(
            ("minji.park", "Park Min-ji"),
            ("jaehyun.kim", "Kim Jae-hyun"),
            ("seoyeon.lee", "Lee Seo-yeon"),
            ("dohyun.choi", "Choi Do-hyun"),
            ("jiwoo.jung", "Jung Ji-woo"),
            ("hyejin.kang", "Kang Hye-jin"),
            ("sungmin.yoon", "Yoon Sung-min"),
            ("eunji.han", "Han Eun-ji"),
            ("yuna.shin", "Shin Yu-na"),
        ),
        members=(
            ("dohyun.choi", "hanbit-robot-policy", "pi"),
            ("jiwoo.jung", "hanbit-robot-policy", "researcher"),
            ("hyejin.kang", "seoulvision-doc-ocr", "pi"),
            ("seoyeon.lee", "kaist-nlp", "pi"),
            ("jiwoo.jung", "kaist-nlp", "researcher"),
            ("seoyeon.lee", "kaist-protein", "pi"),
            ("sungmin.yoon", "kaist-protein", "researcher"),
            ("sungmin.yoon", "snu-medical-imaging", "pi"),
            ("eunji.han", "postech-materials", "pi"),
        ),
        program_managers=(("minji.park", "startups"), ("jaehyun.kim", "universities")),
        auditors=("yuna.shin",),
        personas=(
            ("researcher", "jiwoo.jung"),
            ("pi", "seoyeon.lee"),
            ("program manager", "jaehyun.kim"),
            ("auditor", "yuna.shin"),
        ),
        priority_grants=(("snu-medical-imaging", PriorityClass.URGENT),),
        requests=(
            DemoRequest(
                "hanbit-robot-policy",
                12_000,
                "Sim-to-real policy training, 3 months",
                "dohyun.choi",
                review="approve",
                tranche_percents=(50, 50),
            ),
            DemoRequest(
                "seoulvision-doc-ocr", 1_500, "Pilot: fine-tune OCR on scanned forms", "hyejin.kang"
            ),
            DemoRequest(
                "kaist-nlp",
                30_000,
                "Instruction tuning of a 13B Korean LLM",
                "seoyeon.lee",
                review="adjust",
                adjusted_to=24_000,
            ),
            DemoRequest(
                "kaist-protein",
                8_000,
                "Structure prediction for 40k sequences",
                "seoyeon.lee",
                review="approve",
            ),
            DemoRequest(
                "snu-medical-imaging",
                20_000,
                "Pre-training on 1.2M radiographs",
                "sungmin.yoon",
                review="approve",
            ),
            DemoRequest(
                "postech-materials", 4_000, "GNN screening of cathode candidates", "eunji.han"
            ),
            DemoRequest(
                "snu-medical-imaging",
                15_000,
                "Second phase: multi-site fine-tuning",
                "sungmin.yoon",
            ),
        ),
        clusters=(
            ClusterSpec(
                "national-daejeon",
                BackendKind.RAY,
                SiteKind.NATIONAL,
                (Inventory("h100-80g", 2, 8), Inventory("a100-80g", 2, 8)),
            ),
            ClusterSpec(
                "national-gwangju",
                BackendKind.RAY,
                SiteKind.NATIONAL,
                (Inventory("v100-32g", 4, 8),),
            ),
            ClusterSpec(
                "kube-pangyo",
                BackendKind.KUBERNETES,
                SiteKind.NATIONAL,
                (Inventory("rngd-48g", 2, 8),),
                address=DEMO_KUBE_CONTEXT,
                tenancy=Tenancy.PER_JOB,
            ),
        ),
    )
