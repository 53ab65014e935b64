"""Whether a finetune found by its name is the one an apply was creating.

A create whose answer was lost, or an apply killed after sending one, leaves only a name to
look for; and a name proves nothing: someone else may have created a finetune of that name
meanwhile (theirs first, ours refused, and the refusal was the answer that was lost). Taking
theirs for ours would upload private weights into it. So a finetune found by name counts as
ours only if it has what was sent (model, description, public where the remote says it: the
Cloudflare list does not) and was created after the create was journaled.

Pure: the journal's timestamp and the remote record in, the reasons it is not ours out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

from reconciler.base.diff import field_changes, project
from reconciler.base.model import AssetDigest, DesiredFinetune, Pending, RemoteFinetune

# How far the remote's clock may run behind ours: a finetune stamped this much before the
# journal's timestamp still counts as made after it. Small, so that another party's finetune
# made moments before ours is not taken for ours; a clock further off blocks (safely), with
# `reconciler import NAME` as the way out.
CLOCK_SKEW = timedelta(seconds=5)


def now() -> str:
    """The journal's timestamp: UTC, ISO 8601, milliseconds, as the Cloudflare API writes."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def journaled(pending: Pending | None, d: DesiredFinetune) -> Pending | None:
    """The journal's operation, if it was sent to the account `d` is declared in: one sent
    elsewhere (before the finetune moved) says nothing about what is found here."""
    if pending is not None and (pending.provider, pending.account) == (d.provider, d.account):
        return pending
    return None


def instant(text: object) -> datetime | None:
    """An ISO 8601 timestamp as an aware datetime (naive ones taken as UTC); None if absent or
    not a timestamp."""
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        stamp = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=timezone.utc)


def created_too_early(created_at: str | None, since: str | None) -> str | None:
    """Why a finetune created at `created_at` cannot be the one a create journaled at `since`
    made, if it cannot."""
    began = instant(since)
    if began is None:
        return "the journal does not say when the create was sent (an older reconciler wrote it)"
    made = instant(created_at)
    if made is None:
        return "the account does not say when it was created"
    if made < began - CLOCK_SKEW:
        return f"it was created at {created_at}, before the create was sent ({since})"
    return None


def differences(
    d: DesiredFinetune,
    remote: RemoteFinetune,
    since: str | None,
    held: Mapping[str, AssetDigest] | None = None,
) -> list[str]:
    """Why `remote` is not the finetune a create journaled at `since` made for `d`; empty when
    it is."""
    reasons = unlike(d, remote, held)
    early = created_too_early(remote.created_at, since)
    if early is not None:
        reasons.append(early)
    return reasons


def unlike(
    d: DesiredFinetune, remote: RemoteFinetune, held: Mapping[str, AssetDigest] | None = None
) -> list[str]:
    """How `remote` differs from what a create for `d` sends.

    Only what the remote says is compared: a field its list leaves out (Cloudflare's `public`)
    or returns without a value for a boolean is unknown, not different. `held`: assets
    uploaded for the create (a Cohere dataset), whose ids the remote names as `<asset>_id`."""
    reasons: list[str] = []
    said = {
        key: want
        for key, want in d.fields.items()
        if key in remote.fields and not (remote.fields[key] is None and isinstance(want, bool))
    }
    for c in field_changes(project(remote.fields, said), said):
        reasons.append(f"its {c.field} is {_show(c.before)}, the config's is {_show(c.after)}")
    for name, asset in sorted((held or {}).items()):
        used = remote.fields.get(f"{name}_id")
        if used is not None and asset.remote_id is not None and str(used) != asset.remote_id:
            reasons.append(
                f"it uses {name} {used}, not {asset.remote_id}, which was uploaded for the create"
            )
    return reasons


def _show(value: object) -> str:
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."
