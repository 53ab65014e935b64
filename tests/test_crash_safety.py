"""The kill harness on a small count in CI: apply killed anywhere converges on a re-run."""

from __future__ import annotations

from crash_harness import harness


def test_apply_killed_at_sampled_points_always_converges(capsys) -> None:
    figures = harness(count=3, every=4)
    with capsys.disabled():
        print(f"\ncrash harness: {figures.line()}")
    assert figures.tried >= 10
    assert figures.killed == figures.tried  # each run really died at its point
    assert figures.failures == []
    assert (figures.converged, figures.duplicates, figures.lost_uploads) == (figures.tried, 0, 0)


def test_a_cohere_apply_killed_anywhere_uploads_each_dataset_once(capsys) -> None:
    """A kill right after a dataset upload used to lose its id: every re-run uploaded the
    dataset again. The id is journaled at once, and the re-run reuses the dataset."""
    figures = harness(count=2, every=1, provider="cohere")
    with capsys.disabled():
        print(f"\ncrash harness (cohere): {figures.line()}")
    assert figures.tried >= 10
    assert figures.killed == figures.tried
    assert figures.failures == []
    assert (figures.converged, figures.duplicates, figures.reuploads) == (figures.tried, 0, 0)


def test_a_versioned_apply_killed_anywhere_leaves_one_of_each_version(capsys) -> None:
    """The apply of a second version (create, uploads, promotion) killed at sampled points: on
    the re-run each version exists once, the new one is current with its files, the first is
    retired, and the journal is settled."""
    figures = harness(count=2, every=4, provider="versioned")
    with capsys.disabled():
        print(f"\ncrash harness (versioned): {figures.line()}")
    assert figures.tried >= 6
    assert figures.killed == figures.tried
    assert figures.failures == []
    assert (figures.converged, figures.duplicates, figures.lost_uploads) == (figures.tried, 0, 0)


def test_a_fireworks_create_killed_anywhere_converges_on_one_model(capsys) -> None:
    """The first apply of an adapter served on a deployment, killed at sampled points (create,
    uploads, validate, serve, promotion): the re-run takes over the model the killed one was
    making, so each finetune has one model, READY with its files, DEPLOYED, nothing pending."""
    figures = harness(count=1, every=3, provider="fireworks-new")
    with capsys.disabled():
        print(f"\ncrash harness (fireworks, first apply): {figures.line()}")
    assert figures.tried >= 4
    assert figures.killed == figures.tried
    assert figures.failures == []
    assert (figures.converged, figures.duplicates, figures.lost_uploads) == (figures.tried, 0, 0)


def test_a_fireworks_replacement_killed_anywhere_converges_create_before_destroy(
    capsys,
) -> None:
    """The apply of new weights (create, uploads, validate, serve, promotion, then the unload
    and delete of the superseded model), killed at sampled points: one model per finetune
    after the re-run, the new one, DEPLOYED; the old one unloaded and deleted."""
    figures = harness(count=1, every=4, provider="fireworks")
    with capsys.disabled():
        print(f"\ncrash harness (fireworks, new weights): {figures.line()}")
    assert figures.killed == figures.tried >= 4
    assert figures.failures == []
    assert (figures.converged, figures.duplicates, figures.lost_uploads) == (figures.tried, 0, 0)
