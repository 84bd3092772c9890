"""The README's sweep example is a valid sweep and means what the README says."""

import re
from pathlib import Path

from orchestrator.plan import make_plan
from orchestrator.spec import parse_spec

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_sweep_example_plans():
    text = re.search(r"## Sweeps.*?```yaml\n(.*?)```", README.read_text(), re.S).group(1)
    plan = make_plan(parse_spec(text, "README.md"))
    assert [c.label for c in plan.configurations] == [
        "baseline/hidden_size=4", "baseline/hidden_size=128",
        "edge_info/hidden_size=4", "edge_info/hidden_size=128"]
    assert plan.seeds == tuple(range(128)) and len(plan.tasks()) == 8
    assert plan.spec.resources.gpus == 1 and plan.spec.tracking.experiment == "edge-info"
    assert all(c.config.use_edge_info == c.label.startswith("edge_info") for c in plan.configurations)
