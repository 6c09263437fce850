"""The interfaces the workflows schedule by (workflows/activity_refs.py) match the activities the
worker registers: the same names, argument and result types. A renamed activity or a changed
signature on either side fails here, not in a running workflow."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from temporalio import activity

from activities.inference import InferenceActivities
from activities.reconcile import ReconcileActivities
from activities.retrieval import RetrievalActivities
from activities.store import StoreActivities
from activities.tools import ToolActivities
from activities.webhooks import WebhookActivities
from workflows import activity_refs

IMPLEMENTATIONS: dict[str, type] = {
    "StoreActivities": StoreActivities,
    "InferenceActivities": InferenceActivities,
    "ToolActivities": ToolActivities,
    "RetrievalActivities": RetrievalActivities,
    "WebhookActivities": WebhookActivities,
    "ReconcileActivities": ReconcileActivities,
}


def _activities(cls: type) -> dict[str, Any]:
    """attribute name -> temporalio's definition (name, arg types, result type) of cls's activities."""
    found = {}
    for attr, member in inspect.getmembers(cls):
        defn = activity._Definition.from_callable(member) if callable(member) else None
        if defn is not None:
            found[attr] = defn
    return found


def test_every_interface_has_an_implementation() -> None:
    interfaces = {
        name for name, obj in vars(activity_refs).items() if isinstance(obj, type) and _activities(obj)
    }
    assert interfaces == set(IMPLEMENTATIONS)


@pytest.mark.parametrize("name", sorted(IMPLEMENTATIONS))
def test_interface_matches_the_registered_activities(name: str) -> None:
    interface = _activities(getattr(activity_refs, name))
    real = _activities(IMPLEMENTATIONS[name])
    assert set(interface) == set(real), f"{name}: activities differ"
    for attr, ref in interface.items():
        impl = real[attr]
        assert (ref.name, ref.arg_types, ref.ret_type) == (impl.name, impl.arg_types, impl.ret_type), (
            f"{name}.{attr}"
        )
